"""Pure pieces: date shifting, date ranges, scope parsing, token expiry in the auth tables."""

from __future__ import annotations

import time
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from smart_app.sandbox.authstate import AuthState, Context
from smart_app.sandbox.dates import compare, parse_range
from smart_app.sandbox.db import Database
from smart_app.sandbox.fixtures import shift_dates, shift_days, shift_value
from smart_app.sandbox.scopes import grant, parse_resource_scope


def test_shift_days_lands_the_anchor_on_the_current_month() -> None:
    assert shift_days(date(2026, 11, 23)) == 0
    assert shift_days(date(2027, 2, 14)) == 92
    assert shift_value("2026-11-01", shift_days(date(2027, 2, 14))) == "2027-02-01"


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)))
def test_anchor_month_days_1_to_20_stay_in_the_current_month(today: date) -> None:
    days = shift_days(today)
    for day in (1, 20):
        moved = date.fromisoformat(shift_value(f"2026-11-{day:02d}", days))
        assert (moved.year, moved.month) == (today.year, today.month)


def test_shift_keeps_time_and_offset_and_skips_birth_date() -> None:
    resource = {"birthDate": "1950-03-14", "effectiveDateTime": "2026-11-05T10:00:00-05:00",
                "period": {"start": "2026-10-01"}, "code": {"text": "2026-11 plan"},
                "valueString": "not a date"}
    moved = shift_dates(resource, 31)
    assert moved["birthDate"] == "1950-03-14"
    assert moved["effectiveDateTime"] == "2026-12-06T10:00:00-05:00"
    assert moved["period"]["start"] == "2026-11-01"
    assert moved["code"]["text"] == "2026-11 plan"


def test_date_compare_prefixes() -> None:
    day = parse_range("2026-11-05")
    month = parse_range("2026-11")
    assert compare("eq", day, month) and not compare("eq", month, day)
    assert compare("ge", day, parse_range("2026-11-05"))
    assert not compare("gt", day, parse_range("2026-11-05"))
    assert compare("lt", day, parse_range("2026-11-06"))
    assert compare("le", day, parse_range("2026-11-05T00:00:00Z"))


def test_scope_parsing() -> None:
    v2 = parse_resource_scope("patient/Condition.rs")
    assert v2 and v2.letters == frozenset("rs")
    v1 = parse_resource_scope("user/*.write")
    assert v1 and v1.rtype == "*" and v1.letters == frozenset("cud")
    assert parse_resource_scope("patient/Condition.sr") is None
    assert parse_resource_scope("patient/condition.rs") is None
    filtered = parse_resource_scope("patient/Observation.rs?category=laboratory")
    assert filtered and filtered.query == (("category", "laboratory"),)


def test_grant_respects_allowance_and_contexts() -> None:
    allowed = "launch openid patient/*.rs"
    requested = "launch openid patient/Condition.rs patient/Condition.c system/*.rs bogus"
    assert grant(requested, allowed, ("patient", "user")) == [
        "launch", "openid", "patient/Condition.rs"]
    assert grant(requested, "", ("system",)) == ["launch", "openid", "system/*.rs"]


def test_expired_tokens_and_launches_are_refused() -> None:
    state = AuthState(Database(None))
    token = state.issue("access", "c", "patient/*.rs", Context("alpha"), ttl=-1)
    assert state.lookup(token, "access") is None
    live = state.issue("access", "c", "patient/*.rs", Context("alpha"), ttl=60)
    assert state.lookup(live, "access") is not None
    assert state.lookup(live, "refresh") is None
    state.db.execute("UPDATE launches SET expires_at=?", (time.time() - 1,))
    launch = state.create_launch(Context("alpha"))
    state.db.execute("UPDATE launches SET expires_at=? WHERE token=?", (time.time() - 1, launch))
    assert state.resolve_launch(launch) is None
