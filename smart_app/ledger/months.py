"""Pure calendar arithmetic: the month of an instant in a timezone, month bounds, splitting at month ends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


@dataclass(frozen=True)
class Span:
    """One piece of an interval that lies inside a single month: UTC start, whole minutes, month key."""

    start: datetime
    minutes: int
    month: str

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


def zone(tz: str | ZoneInfo) -> ZoneInfo:
    """A ZoneInfo from an IANA name (or the zone itself)."""
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("naive datetime refused: pass a timezone-aware value")


def month_of(instant: datetime, tz: str | ZoneInfo) -> str:
    """The month key "YYYY-MM" of an instant as the clock on the wall in `tz` shows it."""
    _require_aware(instant)
    local = instant.astimezone(zone(tz))
    return f"{local.year:04d}-{local.month:02d}"


def parse_month(month: str) -> tuple[int, int]:
    """(year, month) of a "YYYY-MM" key; ValueError for anything else, and for years whose bounds a datetime
    cannot hold (0000, 9999). Which months a person may ask for is `ledger.validation.check_month`'s to say."""
    match = _MONTH.match(month)
    if not match:
        raise ValueError(f"month {month!r} is not in the form YYYY-MM")
    year = int(match.group(1))
    if not 1 <= year <= 9998:
        raise ValueError(f"month {month!r} is outside the calendar the app can compute with")
    return year, int(match.group(2))


def next_month(month: str) -> str:
    """The key of the month after `month`."""
    year, mon = parse_month(month)
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def month_label(month: str) -> str:
    """ "2026-10" -> "October 2026", for messages."""
    year, mon = parse_month(month)
    return f"{_NAMES[mon - 1]} {year}"


def _month_start(year: int, mon: int, tz: ZoneInfo) -> datetime:
    # fold=0 picks the earlier reading of an ambiguous midnight and, inside a gap, the instant the
    # clocks jump, so the result is always the first instant whose local date is in the month.
    return datetime(year, mon, 1, tzinfo=tz).astimezone(UTC)


def month_bounds(month: str, tz: str | ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a month on the wall clock of `tz`."""
    zone_info = zone(tz)
    year, mon = parse_month(month)
    after_year, after_mon = parse_month(next_month(month))
    return _month_start(year, mon, zone_info), _month_start(after_year, after_mon, zone_info)


def split_at_months(start: datetime, minutes: int, tz: str | ZoneInfo) -> list[Span]:
    """Cut [start, start + minutes) at each local month boundary; the pieces' minutes add up to `minutes`."""
    _require_aware(start)
    if minutes <= 0:
        raise ValueError("minutes must be positive")
    zone_info = zone(tz)
    cursor, remaining = start.astimezone(UTC), minutes
    pieces: list[Span] = []
    while remaining > 0:
        month = month_of(cursor, zone_info)
        month_end = month_bounds(month, zone_info)[1]
        room = (month_end - cursor) / timedelta(minutes=1)
        if room >= remaining:
            pieces.append(Span(cursor, remaining, month))
            break
        # Offsets are whole minutes in every modern zone, so `room` is whole for minute-aligned starts;
        # rounding (never below 1) keeps the loop finite for historical offsets with seconds.
        take = max(1, round(room))
        pieces.append(Span(cursor, take, month))
        cursor, remaining = cursor + timedelta(minutes=take), remaining - take
    return pieces
