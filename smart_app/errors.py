"""The project's own exceptions: each carries a message a user can act on."""

from __future__ import annotations


class SmartAppError(Exception):
    """Base of every error the app raises on purpose; `hint` says what to do about it."""

    title = "Something went wrong"
    status_code = 500
    # What the person may choose to do instead, each {"label": ..., "fields": {...}} to send again with.
    choices: tuple[dict[str, object], ...] = ()

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class ConfigError(SmartAppError):
    """A setting, organization file or rule file is missing or wrong."""

    title = "Configuration problem"


class LaunchError(SmartAppError):
    """The SMART launch could not be completed."""

    title = "The app could not be launched"
    status_code = 400


class EhrError(SmartAppError):
    """The EHR could not be reached or answered with an error.

    `http_status` is the EHR's status (None when it was not reached or timed out) and `outcome` the text
    of its OperationOutcome, so callers can tell a retryable failure from a refusal. `retry_after` is the
    wait in seconds the EHR asked for (its `Retry-After` header on 429 or 503), None when it named none.
    """

    title = "The EHR did not answer as expected"
    status_code = 502

    def __init__(self, message: str, hint: str = "", http_status: int | None = None, outcome: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message, hint)
        self.http_status = http_status
        self.outcome = outcome
        self.retry_after = retry_after


class SessionExpired(SmartAppError):
    """The browser's session is unknown or expired; the user must relaunch from the chart."""

    title = "Your session has ended"
    status_code = 401
