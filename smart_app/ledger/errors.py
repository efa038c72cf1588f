"""Errors of the ledger room; each says what went wrong and what the clinician can do next."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smart_app.errors import SmartAppError

if TYPE_CHECKING:
    from smart_app.ledger.values import Entry, Timer


class LedgerError(SmartAppError):
    """Time could not be recorded, corrected or timed as asked."""

    title = "The time was not recorded"
    status_code = 422


class InvalidEntry(LedgerError):
    """An entry's fields are wrong (minutes, dates, activity, program, role...)."""


class LedgerNotFound(LedgerError):
    """The entry or timer named does not exist in this organization."""

    title = "Not found"
    status_code = 404


class OverlapError(LedgerError):
    """The same person already has time recorded in this interval."""

    title = "This time is already counted"
    status_code = 409

    def __init__(self, message: str, hint: str, conflict: Entry) -> None:
        super().__init__(message, hint)
        self.conflict = conflict


class AlreadyCorrected(LedgerError):
    """The entry was already amended or voided; corrections apply to the latest version only."""

    title = "This entry was already corrected"
    status_code = 409

    def __init__(self, message: str, hint: str, corrected_by: str) -> None:
        super().__init__(message, hint)
        self.corrected_by = corrected_by


class MonthClosed(LedgerError):
    """The entry falls in a month other than the open one and the caller did not say that is meant."""

    title = "That month is closed"

    def __init__(self, message: str, hint: str, month: str) -> None:
        super().__init__(message, hint)
        self.month = month


class TimerRunning(LedgerError):
    """The person already has a running timer; the UI asks whether to stop or discard it."""

    title = "A timer is already running"
    status_code = 409

    def __init__(self, message: str, hint: str, timer: Timer) -> None:
        super().__init__(message, hint)
        self.timer = timer


class TimerNeedsConfirmation(LedgerError):
    """The timer ran past the cap; its time counts only once the user confirms (or adjusts) it."""

    title = "Please confirm the timer's time"

    def __init__(self, message: str, hint: str, timer: Timer, elapsed_minutes: int, cap_minutes: int) -> None:
        super().__init__(message, hint)
        self.timer = timer
        self.elapsed_minutes = elapsed_minutes
        self.cap_minutes = cap_minutes


class TimerAlreadyStopped(LedgerError):
    """The timer was stopped or discarded already (perhaps in another tab or by a double click)."""

    title = "This timer has already stopped"
    status_code = 409

    def __init__(self, message: str, hint: str, timer: Timer) -> None:
        super().__init__(message, hint)
        self.timer = timer
