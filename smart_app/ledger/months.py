"""Pure calendar arithmetic: the `Month` value type (parsing, days, bounds on a wall clock, labels, neighbours)
and the splitting of an interval at month ends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from smart_app.ledger.errors import InvalidEntry

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
_HINT = "Write the month as YYYY-MM, for example 2026-10."


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


class InvalidMonth(InvalidEntry, ValueError):
    """A month key that is not "YYYY-MM" (a ValueError too, for code that parses without the ledger's errors)."""

    title = "That is not a month"


@dataclass(frozen=True, order=True)
class Month:
    """One calendar month: parsed from and written as "YYYY-MM", with its days, its instants on a wall clock,
    its label and its neighbours. Months order by time."""

    year: int
    number: int

    def __post_init__(self) -> None:
        if not (1 <= self.year <= 9999 and 1 <= self.number <= 12):
            raise InvalidMonth(f"{self.year:04d}-{self.number:02d} is not a month.", _HINT)

    @classmethod
    def parse(cls, key: str) -> Month:
        """The month a "YYYY-MM" key names; InvalidMonth, saying how to write one, for anything else."""
        match = _MONTH.match(key) if isinstance(key, str) else None
        if not match:
            raise InvalidMonth(f"{key!r} is not a month.", _HINT)
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> Month:
        """The month holding a calendar day."""
        return cls(day.year, day.month)

    @classmethod
    def at(cls, instant: datetime, tz: str | ZoneInfo) -> Month:
        """The month of an instant as the clock on the wall in `tz` shows it."""
        _require_aware(instant)
        return cls.of(instant.astimezone(zone(tz)).date())

    @property
    def key(self) -> str:
        """ "YYYY-MM", as the database and the URLs carry it."""
        return f"{self.year:04d}-{self.number:02d}"

    def __str__(self) -> str:
        return self.key

    @property
    def label(self) -> str:
        """ "October 2026", for people."""
        return f"{_NAMES[self.number - 1]} {self.year}"

    @property
    def first_day(self) -> date:
        """The 1st."""
        return date(self.year, self.number, 1)

    @property
    def last_day(self) -> date:
        """The 28th to the 31st."""
        return self.next().first_day - timedelta(days=1)

    def plus(self, months: int) -> Month:
        """The month `months` later (earlier when negative)."""
        index = self.year * 12 + self.number - 1 + months
        return Month(index // 12, index % 12 + 1)

    def next(self) -> Month:
        """The month after this one."""
        return self.plus(1)

    def previous(self) -> Month:
        """The month before this one."""
        return self.plus(-1)

    def contains(self, day: date) -> bool:
        """Whether a calendar day falls in this month."""
        return (day.year, day.month) == (self.year, self.number)

    def bounds(self, tz: str | ZoneInfo) -> tuple[datetime, datetime]:
        """The UTC instants [start, end) of this month on the wall clock of `tz`."""
        zone_info = zone(tz)
        return _start_of(self, zone_info), _start_of(self.next(), zone_info)

    def days_left(self, today: date) -> int:
        """Days of this month on which time can still be captured, today included (0 once it is over)."""
        if today > self.last_day:
            return 0
        return (self.last_day - max(today, self.first_day)).days + 1


def _start_of(month: Month, tz: ZoneInfo) -> datetime:
    # fold=0 picks the earlier reading of an ambiguous midnight and, inside a gap, the instant the
    # clocks jump, so the result is always the first instant whose local date is in the month.
    return datetime(month.year, month.number, 1, tzinfo=tz).astimezone(UTC)


def split_at_months(start: datetime, minutes: int, tz: str | ZoneInfo) -> list[Span]:
    """Cut [start, start + minutes) at each local month boundary; the pieces' minutes add up to `minutes`."""
    _require_aware(start)
    if minutes <= 0:
        raise ValueError("minutes must be positive")
    zone_info = zone(tz)
    cursor, remaining = start.astimezone(UTC), minutes
    pieces: list[Span] = []
    while remaining > 0:
        month = Month.at(cursor, zone_info)
        month_end = month.bounds(zone_info)[1]
        room = (month_end - cursor) / timedelta(minutes=1)
        if room >= remaining:
            pieces.append(Span(cursor, remaining, month.key))
            break
        # Offsets are whole minutes in every modern zone, so `room` is whole for minute-aligned starts;
        # rounding (never below 1) keeps the loop finite for historical offsets with seconds.
        take = max(1, round(room))
        pieces.append(Span(cursor, take, month.key))
        cursor, remaining = cursor + timedelta(minutes=take), remaining - take
    return pieces
