"""Recording time: validation messages, closed months, overlap refusal, month-end splits, locks and late entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import transaction
from smart_app.ledger.entries import record_entry
from smart_app.ledger.errors import InvalidEntry, LedgerError, MonthClosed, OverlapError
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.month_locks import get_lock, is_locked, lock_month
from smart_app.ledger.queries import late_entries, month_minutes, patient_month
from tests.ledger.conftest import DOCTOR, NOW, ORG, TZ, entry


def record(factory: sessionmaker[Session], now: datetime = NOW, **kwargs: object):  # noqa: ANN201
    item = kwargs.pop("item", entry())
    with transaction(factory) as db:
        return record_entry(db, item, timezone=TZ, now=now, **kwargs)  # type: ignore[arg-type]


def count_rows(factory: sessionmaker[Session]) -> int:
    with factory() as db:
        return db.scalar(select(func.count()).select_from(TimeEntryRow)) or 0


def test_a_valid_entry_is_recorded_with_its_month_and_a_message(factory) -> None:
    result = record(factory)
    (stored,) = result.entries
    assert stored.month == "2026-11" and stored.minutes == 20 and stored.kind == "entry"
    assert stored.start == datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    assert stored.recorded_by == entry().performer and not stored.late and not result.split
    assert "Recorded 20 minutes of CCM (Record review)" in result.message
    assert "Nov 20, 2026 09:00 EST" in result.message


def test_seconds_are_cut_to_the_minute(factory) -> None:
    result = record(factory, item=entry(start=datetime(2026, 11, 20, 14, 0, 42, 5, tzinfo=UTC)))
    assert result.entries[0].start == datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(("changes", "message"), [
    ({"minutes": 0}, "Minutes must be more than zero; you entered 0."),
    ({"minutes": -5}, "Minutes must be more than zero; you entered -5."),
    ({"minutes": 1441}, "at most 1440 minutes"),
    ({"minutes": 2.5}, "whole number"),
    ({"start": NOW - timedelta(minutes=10)}, "which is in the future"),
    ({"start": NOW + timedelta(days=2)}, "which is in the future"),
    ({"start": datetime(2026, 11, 20, 9, 0)}, "no timezone"),
    ({"activity": "knitting"}, "Unknown activity 'knitting'"),
    ({"program": "pcm", "activity": "psychiatric-case-review"}, "does not count toward PCM"),
    ({"program": "xyz"}, "Unknown program"),
    ({"role": "janitor"}, "Unknown role"),
    ({"performer": "Patient/1"}, "not a Practitioner or PractitionerRole reference"),
    ({"source": "guess"}, "Unknown source"),
    ({"note": "called\x00back"}, "The note contains a NUL character"),
    ({"start": datetime(1, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo"))}, "dated Jan 01, 1, more than a year ago"),
    ({"start": datetime(2025, 11, 18, 14, 0, tzinfo=UTC)}, "more than a year ago"),
    ({"start": datetime(9999, 12, 31, 23, 0, tzinfo=ZoneInfo("America/New_York"))}, "which is in the future"),
])
def test_invalid_entries_are_refused_with_a_clear_message(factory, changes, message) -> None:
    with pytest.raises(InvalidEntry) as caught:
        record(factory, item=entry(**changes))
    assert message in caught.value.message
    assert caught.value.hint and caught.value.status_code == 422
    assert count_rows(factory) == 0


def test_time_in_a_closed_month_needs_explicit_permission(factory) -> None:
    october = entry(start=datetime(2026, 10, 15, 14, 0, tzinfo=UTC))
    with pytest.raises(MonthClosed) as caught:
        record(factory, item=october)
    assert caught.value.month == "2026-10"
    assert "October 2026" in caught.value.message and "November 2026" in caught.value.message
    assert "confirm" in caught.value.hint
    assert count_rows(factory) == 0
    result = record(factory, item=october, allow_closed_month=True)
    assert result.entries[0].month == "2026-10"


def test_overlapping_time_of_the_same_person_is_refused(factory) -> None:
    first = record(factory).entries[0]
    other_patient = entry(patient_id="pat-2", start=first.start + timedelta(minutes=10))
    with pytest.raises(OverlapError) as caught:
        record(factory, item=other_patient)
    assert caught.value.conflict.id == first.id
    assert "cannot be counted twice" in caught.value.message and "shared" in caught.value.hint
    with pytest.raises(OverlapError):
        record(factory, item=entry(start=first.start - timedelta(minutes=5), minutes=6))  # same patient
    assert count_rows(factory) == 1


def test_overlap_is_allowed_when_marked_shared_and_for_other_people(factory) -> None:
    first = record(factory).entries[0]
    shared = record(factory, item=entry(patient_id="pat-2", start=first.start, shared=True)).entries[0]
    assert shared.shared
    colleague = record(factory, item=entry(performer=DOCTOR, role="billing-practitioner")).entries[0]
    assert colleague.performer == DOCTOR
    # Touching intervals do not overlap.
    record(factory, item=entry(start=first.end, minutes=5))
    totals = month_minutes(factory(), ORG, "pat-2", "2026-11")
    assert totals.lines[0].shared_minutes == 20


def test_an_entry_across_midnight_at_month_end_is_split_into_linked_entries(factory) -> None:
    late_october = entry(start=datetime(2026, 11, 1, 3, 30, tzinfo=UTC), minutes=60)  # 23:30 EDT on Oct 31
    result = record(factory, item=late_october, allow_closed_month=True)
    october, november = result.entries
    assert (october.month, october.minutes, november.month, november.minutes) == ("2026-10", 30, "2026-11", 30)
    assert october.split_group == november.split_group == october.id
    assert result.split and "split: 30 in October 2026 and 30 in November 2026" in result.message
    with factory() as db:
        assert [e.id for e in patient_month(db, ORG, "pat-1", "2026-10").entries] == [october.id]
        assert [e.id for e in patient_month(db, ORG, "pat-1", "2026-11").entries] == [november.id]


def test_a_split_into_a_closed_month_needs_permission(factory) -> None:
    with pytest.raises(MonthClosed):
        record(factory, item=entry(start=datetime(2026, 11, 1, 3, 30, tzinfo=UTC), minutes=60))


def test_utc_next_month_but_local_same_month_is_not_split(factory) -> None:
    item = entry(start=datetime(2026, 11, 1, 1, 0, tzinfo=UTC), minutes=30)  # 21:00 on Oct 31 in New York
    (only,) = record(factory, item=item, allow_closed_month=True).entries
    assert only.month == "2026-10"


def test_dst_night_split_keeps_every_minute(factory) -> None:
    item = entry(start=datetime(2026, 11, 1, 3, 30, tzinfo=UTC), minutes=240)  # clocks fall back at 02:00
    october, november = record(factory, item=item, allow_closed_month=True).entries
    assert (october.minutes, november.minutes) == (30, 210)


def test_entries_after_a_lock_are_accepted_and_flagged_late(factory) -> None:
    october = entry(start=datetime(2026, 10, 15, 14, 0, tzinfo=UTC))
    before = record(factory, item=october, allow_closed_month=True).entries[0]
    with transaction(factory) as db:
        lock = lock_month(db, ORG, "pat-1", "2026-10", "Practitioner/biller", now=NOW)
        again = lock_month(db, ORG, "pat-1", "2026-10", "Practitioner/someone-else", now=NOW + timedelta(hours=1))
    assert again == lock and lock.locked_by == "Practitioner/biller"
    after = record(factory, item=entry(start=datetime(2026, 10, 16, 14, 0, tzinfo=UTC)), allow_closed_month=True)
    assert after.late and after.entries[0].late
    assert "claim for October 2026 was already approved" in after.message
    assert "corrected claim" in after.message
    # Another patient's October is not locked by pat-1's claim: their time is on time.
    other = record(factory, item=entry(patient_id="pat-2", start=datetime(2026, 10, 17, 14, 0, tzinfo=UTC)),
                   allow_closed_month=True)
    assert not other.late and not other.entries[0].late and "late" not in other.message
    with factory() as db:
        assert is_locked(db, ORG, "pat-1", "2026-10") and not is_locked(db, ORG, "pat-1", "2026-11")
        assert not is_locked(db, ORG, "pat-2", "2026-10")
        assert get_lock(db, ORG, "pat-1", "2026-11") is None
        assert not patient_month(db, ORG, "pat-2", "2026-10").locked
        assert [e.id for e in late_entries(db, ORG, "2026-10")] == [after.entries[0].id]
        month = patient_month(db, ORG, "pat-1", "2026-10")
    assert month.locked and {e.id for e in month.entries} == {before.id, after.entries[0].id}
    assert not before.late


def test_bad_month_keys_are_explained(factory) -> None:
    with factory() as db, pytest.raises(LedgerError, match="YYYY-MM"):
        patient_month(db, ORG, "pat-1", "Oct 2026")


def test_time_up_to_a_year_back_is_still_recorded_when_the_closed_month_is_confirmed(factory) -> None:
    # Medicare takes claims within 12 months of the service: late time from last November still counts.
    result = record(factory, item=entry(start=NOW - timedelta(days=360)), allow_closed_month=True)
    assert result.entries[0].month == "2025-11"
