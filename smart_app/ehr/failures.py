"""What a failed FHIR exchange means, decided once: temporary (try again, maybe after a wait) or fatal.

Every caller that talks to an EHR asks this module, so reads, writes, the month-end outbox and the consent
write-back agree on what is worth retrying:
- not reached, timed out, or an answer the app could not use (no HTTP status, or a 2xx/3xx it cannot read):
  temporary; the idempotent send finds what an earlier attempt wrote.
- 401: the authorization is no longer honoured; the caller relaunches or re-authorizes (`SessionExpired`).
- 429, or 503 with `Retry-After`: temporary, and the EHR asked the app to slow down (`throttled`, with
  the wait it named).
- 408 (the server timed out waiting) and 5xx: temporary.
- any other 4xx: fatal; the EHR refused the request and sending it again will not change that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from smart_app.errors import EhrError

# Statuses whose Retry-After header the app honours: "too many requests" and "unavailable".
SLOW_DOWN = (429, 503)
# Refusals worth retrying: the request timed out at the server, or the server asked us to slow down.
_RETRYABLE = frozenset({408, 429})


class FailureKind(StrEnum):
    """How to treat a failed exchange with the EHR."""

    TEMPORARY = "temporary"
    UNAUTHORIZED = "unauthorized"
    FATAL = "fatal"


@dataclass(frozen=True)
class Failure:
    """A failed exchange, classified: its kind, the EHR's status, and the wait it asked for."""

    kind: FailureKind
    http_status: int | None
    retry_after: float | None = None

    @property
    def temporary(self) -> bool:
        """Sending again later may succeed."""
        return self.kind is FailureKind.TEMPORARY

    @property
    def throttled(self) -> bool:
        """The EHR asked the app to slow down (429, or a named wait)."""
        return self.http_status == 429 or self.retry_after is not None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """The wait a `Retry-After` header asks for (delay-seconds or an HTTP-date), or None if absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def classify(http_status: int | None, retry_after: float | None = None) -> Failure:
    """The meaning of a failure with this HTTP status (None: not reached or timed out) and named wait."""
    if http_status == 401:
        return Failure(FailureKind.UNAUTHORIZED, http_status)
    if http_status is None or http_status < 400 or http_status >= 500 or http_status in _RETRYABLE:
        return Failure(FailureKind.TEMPORARY, http_status, retry_after)
    return Failure(FailureKind.FATAL, http_status, retry_after)


def classify_answer(http_status: int, retry_after_header: str | None) -> Failure:
    """`classify` for an HTTP answer of 400 or more; its `Retry-After` counts on 429 and 503 only."""
    wait = retry_after_seconds(retry_after_header) if http_status in SLOW_DOWN else None
    return classify(http_status, wait)


def classify_error(exc: EhrError) -> Failure:
    """`classify` for an EhrError raised by the FHIR client (its status and the wait it carries)."""
    return classify(exc.http_status, exc.retry_after)
