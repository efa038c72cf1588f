"""Month arithmetic on the wall clock of a timezone, including DST changes at a month boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smart_app.ledger.months import month_bounds, month_label, month_of, next_month, parse_month, split_at_months

NY = "America/New_York"
ZONES = ("America/New_York", "America/Los_Angeles", "America/Adak", "Africa/Cairo", "Africa/Tunis",
         "Africa/Casablanca", "America/Santiago", "America/Havana", "Asia/Beirut", "Australia/Lord_Howe",
         "Pacific/Chatham", "Pacific/Apia", "Asia/Kolkata", "Europe/London", "UTC")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_month_of_uses_the_local_wall_clock() -> None:
    # 01:00 UTC on Nov 1 is still 21:00 on Oct 31 in New York.
    assert month_of(utc(2026, 11, 1, 1, 0), NY) == "2026-10"
    assert month_of(utc(2026, 11, 1, 4, 0), NY) == "2026-11"
    assert month_of(utc(2026, 11, 1, 1, 0), "UTC") == "2026-11"


def test_month_keys() -> None:
    assert next_month("2026-12") == "2027-01"
    assert next_month("2026-01") == "2026-02"
    assert month_label("2026-10") == "October 2026"
    for bad in ("2026-13", "2026-1", "26-01", "2026/01", ""):
        with pytest.raises(ValueError):
            parse_month(bad)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        month_of(datetime(2026, 1, 1), NY)


def test_split_at_midnight_on_october_31_in_new_york() -> None:
    pieces = split_at_months(utc(2026, 11, 1, 3, 30), 60, NY)  # 23:30 EDT on Oct 31
    assert [(p.month, p.minutes) for p in pieces] == [("2026-10", 30), ("2026-11", 30)]
    assert pieces[1].start == utc(2026, 11, 1, 4, 0)
    assert pieces[0].end == pieces[1].start


def test_split_across_the_night_clocks_fall_back() -> None:
    # Nov 1 2026 is the Sunday US clocks fall back at 02:00: 23:30 EDT + 4 h ends at 02:30 EST.
    pieces = split_at_months(utc(2026, 11, 1, 3, 30), 240, NY)
    assert [(p.month, p.minutes) for p in pieces] == [("2026-10", 30), ("2026-11", 210)]


def test_split_when_cairo_falls_back_at_the_month_boundary() -> None:
    # Cairo's clocks went from 24:00 EEST on Oct 31 2024 back to 23:00 EET: the repeated hour is October's.
    pieces = split_at_months(utc(2024, 10, 31, 20, 30), 120, "Africa/Cairo")  # 23:30 EEST
    assert [(p.month, p.minutes) for p in pieces] == [("2024-10", 90), ("2024-11", 30)]


def test_split_when_tunis_springs_forward_at_the_month_boundary() -> None:
    # Tunis jumped from 00:00 to 01:00 on May 1 2005: 23:30 on Apr 30 + 60 minutes is 01:30 on May 1.
    pieces = split_at_months(utc(2005, 4, 30, 22, 30), 60, "Africa/Tunis")
    assert [(p.month, p.minutes) for p in pieces] == [("2005-04", 30), ("2005-05", 30)]


def test_no_split_when_only_the_utc_date_is_in_the_next_month() -> None:
    pieces = split_at_months(utc(2026, 11, 1, 1, 0), 30, NY)  # 21:00 on Oct 31 in New York
    assert [(p.month, p.minutes) for p in pieces] == [("2026-10", 30)]


def test_an_entry_spanning_a_whole_month_splits_three_ways() -> None:
    pieces = split_at_months(utc(2026, 2, 28, 4, 0), 24 * 60 * 2, "UTC")
    assert [p.month for p in pieces] == ["2026-02", "2026-03"]
    pieces = split_at_months(utc(2026, 2, 28, 23, 0), 1440 * 31 + 120, "UTC")
    assert [p.month for p in pieces] == ["2026-02", "2026-03", "2026-04"]


instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 31),
                        timezones=st.just(UTC)).map(lambda d: d.replace(second=0, microsecond=0))


@settings(max_examples=300, deadline=None)
@given(instant=instants, tz=st.sampled_from(ZONES))
def test_an_instant_lies_inside_the_bounds_of_its_month(instant: datetime, tz: str) -> None:
    month = month_of(instant, tz)
    start, end = month_bounds(month, tz)
    assert start <= instant < end
    assert month_of(start, tz) == month
    assert month_of(start - timedelta(microseconds=1), tz) != month
    assert month_of(end, tz) == next_month(month)


@settings(max_examples=300, deadline=None)
@given(start=instants, minutes=st.integers(min_value=1, max_value=3 * 24 * 60), tz=st.sampled_from(ZONES))
def test_split_pieces_are_contiguous_whole_and_each_in_one_month(start: datetime, minutes: int, tz: str) -> None:
    pieces = split_at_months(start, minutes, tz)
    assert sum(p.minutes for p in pieces) == minutes
    assert all(p.minutes > 0 for p in pieces)
    assert pieces[0].start == start and pieces[-1].end == start + timedelta(minutes=minutes)
    for piece in pieces:
        assert month_of(piece.start, tz) == piece.month
        assert month_of(piece.end - timedelta(seconds=1), tz) == piece.month
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert before.end == after.start
        assert after.start == month_bounds(after.month, tz)[0]
        assert after.month == next_month(before.month)
