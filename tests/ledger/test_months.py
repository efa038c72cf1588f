"""Month arithmetic on the wall clock of a timezone, including DST changes at a month boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smart_app.ledger.months import InvalidMonth, Month, split_at_months

NY = "America/New_York"
ZONES = ("America/New_York", "America/Los_Angeles", "America/Adak", "Africa/Cairo", "Africa/Tunis",
         "Africa/Casablanca", "America/Santiago", "America/Havana", "Asia/Beirut", "Australia/Lord_Howe",
         "Pacific/Chatham", "Pacific/Apia", "Asia/Kolkata", "Europe/London", "UTC")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_month_of_uses_the_local_wall_clock() -> None:
    # 01:00 UTC on Nov 1 is still 21:00 on Oct 31 in New York.
    assert Month.at(utc(2026, 11, 1, 1, 0), NY).key == "2026-10"
    assert Month.at(utc(2026, 11, 1, 4, 0), NY).key == "2026-11"
    assert Month.at(utc(2026, 11, 1, 1, 0), "UTC").key == "2026-11"


def test_month_keys() -> None:
    assert Month.parse("2026-12").next().key == "2027-01"
    assert Month.parse("2026-01").next().key == "2026-02"
    assert Month.parse("2026-10").label == "October 2026"
    for bad in ("2026-13", "2026-1", "26-01", "2026/01", ""):
        with pytest.raises(ValueError):
            Month.parse(bad)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        Month.at(datetime(2026, 1, 1), NY)


def test_a_bad_month_key_says_how_to_write_one() -> None:
    with pytest.raises(InvalidMonth) as caught:
        Month.parse("Oct 2026")
    assert caught.value.message == "'Oct 2026' is not a month."
    assert caught.value.hint == "Write the month as YYYY-MM, for example 2026-10."
    with pytest.raises(InvalidMonth, match="2026-13 is not a month"):
        Month(2026, 13)


def test_days_neighbours_and_order() -> None:
    feb = Month.parse("2028-02")
    assert (feb.first_day, feb.last_day) == (date(2028, 2, 1), date(2028, 2, 29)), "2028 is a leap year"
    assert Month.parse("2026-02").last_day == date(2026, 2, 28)
    assert Month.parse("2026-12").last_day == date(2026, 12, 31)
    assert Month.parse("2026-01").previous() == Month(2025, 12)
    assert Month.parse("2026-11").plus(14) == Month(2028, 1) and Month(2028, 1).plus(-14) == Month(2026, 11)
    assert Month.of(date(2026, 11, 30)) == Month(2026, 11) and str(Month(2026, 3)) == "2026-03"
    assert sorted([Month(2027, 1), Month(2026, 12), Month(2026, 2)]) == [Month(2026, 2), Month(2026, 12),
                                                                          Month(2027, 1)]
    assert Month(2026, 11).contains(date(2026, 11, 30)) and not Month(2026, 11).contains(date(2026, 12, 1))


def test_bounds_carry_the_zone_offset() -> None:
    # November 2026 in New York starts at 04:00 UTC (EDT) and ends at 05:00 UTC (EST, after the DST change).
    assert Month(2026, 11).bounds(NY) == (utc(2026, 11, 1, 4, 0), utc(2026, 12, 1, 5, 0))


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
    month = Month.at(instant, tz).key
    start, end = Month.parse(month).bounds(tz)
    assert start <= instant < end
    assert Month.at(start, tz).key == month
    assert Month.at(start - timedelta(microseconds=1), tz).key != month
    assert Month.at(end, tz).key == Month.parse(month).next().key


@settings(max_examples=300, deadline=None)
@given(start=instants, minutes=st.integers(min_value=1, max_value=3 * 24 * 60), tz=st.sampled_from(ZONES))
def test_split_pieces_are_contiguous_whole_and_each_in_one_month(start: datetime, minutes: int, tz: str) -> None:
    pieces = split_at_months(start, minutes, tz)
    assert sum(p.minutes for p in pieces) == minutes
    assert all(p.minutes > 0 for p in pieces)
    assert pieces[0].start == start and pieces[-1].end == start + timedelta(minutes=minutes)
    for piece in pieces:
        assert Month.at(piece.start, tz).key == piece.month
        assert Month.at(piece.end - timedelta(seconds=1), tz).key == piece.month
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert before.end == after.start
        assert after.start == Month.parse(after.month).bounds(tz)[0]
        assert after.month == Month.parse(before.month).next().key
