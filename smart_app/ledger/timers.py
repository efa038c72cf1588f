"""Server-side timers: one running per person, a cap past which time needs confirming, stops that happen once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from smart_app.db import rows_changed, utcnow
from smart_app.ledger.audit import TIMER_DISCARDED, TIMER_STARTED, TIMER_STOPPED
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.entries import describe, new_id, write_entries
from smart_app.ledger.errors import (
    InvalidEntry,
    LedgerNotFound,
    TimerAlreadyStopped,
    TimerNeedsConfirmation,
    TimerRunning,
)
from smart_app.ledger.models import TimeEntryRow, TimerRow
from smart_app.ledger.months import split_at_months, zone
from smart_app.ledger.queries import to_entries
from smart_app.ledger.validation import check_entry, check_note, check_work, local_time, program_label
from smart_app.ledger.values import DEFAULT_TIMER_CAP_MINUTES, EntryInput, StopResult, Timer, TimerInput
from smart_app.ledger.vocabulary import Vocabulary, default_vocabulary
from smart_app.ledger.writelock import lock_performers
from smart_app.statuses import EntryKind, TimerOutcome


def _value(row: TimerRow) -> Timer:
    return Timer(row.id, row.organization_id, row.patient_id, row.performer, row.role, row.program, row.activity,
                 row.note, row.started_at, row.stopped_at, row.outcome, row.closed_by, row.minutes)


def _fresh(session: Session, organization_id: str, timer_id: str) -> TimerRow:
    # populate_existing: another worker may have stopped the timer since this session last read it.
    row = session.scalar(select(TimerRow).where(TimerRow.id == timer_id, TimerRow.organization_id == organization_id)
                         .execution_options(populate_existing=True))
    if row is None:
        raise LedgerNotFound(f"No timer {timer_id!r} in this organization.", "Reload the page to see your timers.")
    return row


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if hours else f"{rest} min"


def _stopped_error(row: TimerRow) -> TimerAlreadyStopped:
    how = "discarded" if row.outcome == TimerOutcome.DISCARDED else "stopped"
    return TimerAlreadyStopped(f"This timer was already {how}" + (f" by {row.closed_by}." if row.closed_by else "."),
                               "Reload the page to see the time that was recorded.", _value(row))


def get_timer(session: Session, organization_id: str, timer_id: str) -> Timer:
    """A timer of this organization, running or not; LedgerNotFound otherwise."""
    return _value(_fresh(session, organization_id, timer_id))


def running_timer(session: Session, organization_id: str, performer: str) -> Timer | None:
    """The person's running timer, or None."""
    row = session.scalar(select(TimerRow).where(
        TimerRow.organization_id == organization_id, TimerRow.performer == performer,
        TimerRow.stopped_at.is_(None)).execution_options(populate_existing=True))
    return _value(row) if row else None


def start_timer(session: Session, timer: TimerInput, *, timezone: str, now: datetime | None = None,
                vocabulary: Vocabulary | None = None) -> Timer:
    """Start the person's timer; TimerRunning (carrying the running timer) if one is already going."""
    now, tz, vocabulary = now or utcnow(), zone(timezone), vocabulary or default_vocabulary()
    check_work(timer.organization_id, timer.patient_id, timer.performer, timer.role, timer.program, timer.activity,
               vocabulary)
    check_note(timer.note)
    lock_performers(session, timer.organization_id, [timer.performer])
    running = running_timer(session, timer.organization_id, timer.performer)
    if running is not None:
        raise TimerRunning(
            f"You already have a timer running since {local_time(running.started_at, tz)} "
            f"({program_label(running.program)}, patient {running.patient_id}).",
            "Stop it to record its time, or discard it, then start the new one.", running)
    row = TimerRow(id=new_id(), organization_id=timer.organization_id, patient_id=timer.patient_id,
                   performer=timer.performer, role=timer.role, program=timer.program, activity=timer.activity,
                   note=timer.note, started_at=now)
    session.add(row)
    record_rows(session, [row], actor=timer.performer, action=TIMER_STARTED, subject=f"Timer/{row.id}",
                organization_id=timer.organization_id, now=now,
                detail={"patient": timer.patient_id, "program": timer.program, "activity": timer.activity})
    return _value(row)


def _close(session: Session, row: TimerRow, now: datetime, outcome: TimerOutcome, by: str, minutes: int | None) -> None:
    # The conditional UPDATE is the single point where a stop wins: exactly one caller sees rowcount 1.
    result = session.execute(
        update(TimerRow).where(TimerRow.id == row.id, TimerRow.stopped_at.is_(None))
        .values(stopped_at=now, outcome=outcome, closed_by=by, minutes=minutes)
        .execution_options(synchronize_session=False))
    if rows_changed(result) != 1:
        raise _stopped_error(_fresh(session, row.organization_id, row.id))
    session.refresh(row)


def _stopped_event(session: Session, row: TimerRow, entries: list[TimeEntryRow], by: str, now: datetime) -> None:
    record_rows(session, [row, *entries], actor=by, action=TIMER_STOPPED, subject=f"Timer/{row.id}",
                organization_id=row.organization_id, now=now,
                detail={"patient": row.patient_id, "entries": [e.id for e in entries],
                        "minutes": sum(e.minutes for e in entries), "outcome": row.outcome})


def stop_timer(session: Session, organization_id: str, timer_id: str, *, by: str, timezone: str,
               confirm_long: bool = False, minutes: int | None = None, shared: bool = False,
               note: str | None = None, cap_minutes: int = DEFAULT_TIMER_CAP_MINUTES, now: datetime | None = None,
               vocabulary: Vocabulary | None = None) -> StopResult:
    """Stop a timer and record its whole minutes (or the `minutes` the user gives, at most the elapsed ones).

    Past `cap_minutes` it needs `confirm_long=True`. Under one minute it records nothing and says so.
    """
    now, tz, vocabulary = now or utcnow(), zone(timezone), vocabulary or default_vocabulary()
    row = _fresh(session, organization_id, timer_id)
    lock_performers(session, organization_id, [row.performer])
    row = _fresh(session, organization_id, timer_id)
    if row.stopped_at is not None:
        raise _stopped_error(row)
    elapsed = _value(row).elapsed_minutes(now)
    if elapsed > cap_minutes and not confirm_long:
        raise TimerNeedsConfirmation(
            f"This timer ran for {_duration(elapsed)}, longer than the {cap_minutes}-minute limit, so its time "
            "does not count until you confirm it.",
            "If you worked the whole time, confirm it; otherwise enter the minutes you actually worked, "
            "or discard the timer.", _value(row), elapsed, cap_minutes)
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)
                                or not 1 <= minutes <= max(elapsed, 1)):
        raise InvalidEntry(f"You can record between 1 and {max(elapsed, 1)} minutes for this timer; "
                           f"you entered {minutes!r}.",
                           "Enter the minutes you worked while it ran, or discard the timer to record nothing.")
    recorded = elapsed if minutes is None else min(minutes, elapsed)
    if recorded < 1:
        _close(session, row, now, TimerOutcome.TOO_SHORT, by, None)
        _stopped_event(session, row, [], by, now)
        return StopResult(_value(row), (), "The timer ran for less than a minute, so nothing was recorded.")
    fields = EntryInput(row.organization_id, row.patient_id, row.performer, row.role, row.program, row.activity,
                        row.started_at, recorded, row.note if note is None else note, "timer", shared)
    start = check_entry(fields, vocabulary, now, tz)
    pieces = split_at_months(start, recorded, tz)
    # No closed-month check: time a timer measured really happened just now, even if it crossed a month end.
    _close(session, row, now, TimerOutcome.RECORDED, by, recorded)
    rows = write_entries(session, fields, pieces, tz, kind=EntryKind.ENTRY, corrects=None, recorded_by=by, reason="",
                         now=now, timer_id=row.id, vocabulary=vocabulary)
    _stopped_event(session, row, rows, by, now)
    written = to_entries(session, rows)
    return StopResult(_value(row), tuple(written), describe("Recorded", fields, written, tz, vocabulary),
                      any(e.late for e in written))


def discard_timer(session: Session, organization_id: str, timer_id: str, *, by: str,
                  now: datetime | None = None) -> Timer:
    """Stop a timer without recording any time; the timer row keeps that it was discarded, by whom and when."""
    now = now or utcnow()
    row = _fresh(session, organization_id, timer_id)
    lock_performers(session, organization_id, [row.performer])
    _close(session, row, now, TimerOutcome.DISCARDED, by, None)
    record_rows(session, [row], actor=by, action=TIMER_DISCARDED, subject=f"Timer/{row.id}",
                organization_id=organization_id, now=now, detail={"patient": row.patient_id})
    return _value(row)


def timer_deadline(timer: Timer, cap_minutes: int = DEFAULT_TIMER_CAP_MINUTES) -> datetime:
    """When a running timer starts to need confirmation (for the UI's warning)."""
    return timer.started_at + timedelta(minutes=cap_minutes)
