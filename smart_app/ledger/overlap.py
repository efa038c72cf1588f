"""Pure interval checks: does new time collide with time the same person already recorded?"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from smart_app.ledger.values import Entry


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals [start, end) share at least one instant; touching ends do not overlap."""
    return a_start < b_end and b_start < a_end


def overlap_minutes(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> int:
    """Whole minutes two intervals share (0 when apart)."""
    shared = min(a_end, b_end) - max(a_start, b_start)
    return max(0, int(shared // timedelta(minutes=1)))


def first_conflict(start: datetime, end: datetime, existing: Iterable[Entry],
                   ignore: frozenset[str] = frozenset()) -> Entry | None:
    """The earliest counting entry that overlaps [start, end), skipping ids in `ignore`."""
    clashes = [e for e in existing
               if e.id not in ignore and e.effective and overlaps(start, end, e.start, e.end)]
    return min(clashes, key=lambda e: e.start, default=None)
