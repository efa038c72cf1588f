"""Corrections are new rows: amend and void keep the original unchanged and show the history."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import transaction
from smart_app.ledger.entries import amend_entry, record_entry, void_entry
from smart_app.ledger.errors import AlreadyCorrected, InvalidEntry, LedgerNotFound, MonthClosed, OverlapError
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.month_locks import lock_month
from smart_app.ledger.queries import get_entry, month_minutes, patient_month
from smart_app.ledger.values import Entry
from tests.ledger.conftest import DOCTOR, NOW, ORG, TZ, entry

BY = "Practitioner/lead"


def recorded(factory: sessionmaker[Session], **changes: object) -> Entry:
    with transaction(factory) as db:
        return record_entry(db, entry(**changes), timezone=TZ, now=NOW).entries[0]


def raw(factory: sessionmaker[Session], entry_id: str) -> tuple:
    with factory() as db:
        row = db.scalar(select(TimeEntryRow).where(TimeEntryRow.id == entry_id))
        return tuple(getattr(row, c.key) for c in TimeEntryRow.__table__.columns)


def test_amend_adds_a_row_and_leaves_the_original_unchanged(factory) -> None:
    original = recorded(factory)
    before = raw(factory, original.id)
    with transaction(factory) as db:
        result = amend_entry(db, ORG, original.id, replace(original.to_input(), minutes=35), by=BY,
                             reason="forgot the family call", timezone=TZ, now=NOW)
    (amendment,) = result.entries
    assert amendment.kind == "amendment" and amendment.corrects_id == original.id and amendment.minutes == 35
    assert amendment.recorded_by == BY and amendment.reason == "forgot the family call"
    assert amendment.recorded_at == NOW
    assert "Amended: now 35 minutes" in result.message
    assert raw(factory, original.id) == before
    with factory() as db:
        month = patient_month(db, ORG, "pat-1", "2026-11")
        assert get_entry(db, ORG, original.id).amended_by == amendment.id
    assert [e.id for e in month.entries] == [amendment.id]
    assert [(e.id, e.amended_by) for e in month.history] == [(original.id, amendment.id), (amendment.id, None)]


def test_void_adds_a_row_and_the_time_stops_counting(factory) -> None:
    original = recorded(factory)
    before = raw(factory, original.id)
    with transaction(factory) as db:
        result = void_entry(db, ORG, original.id, by=BY, reason="wrong patient", timezone=TZ, now=NOW)
    (void,) = result.entries
    assert void.kind == "void" and void.corrects_id == original.id and void.reason == "wrong patient"
    assert "Voided 20 minutes" in result.message
    assert raw(factory, original.id) == before
    with factory() as db:
        month = patient_month(db, ORG, "pat-1", "2026-11")
        assert month_minutes(db, ORG, "pat-1", "2026-11").lines == ()
    assert month.entries == ()
    assert [(e.kind, e.voided_by) for e in month.history] == [("entry", void.id), ("void", None)]


def test_corrections_need_a_reason_and_apply_to_the_latest_version(factory) -> None:
    original = recorded(factory)
    with transaction(factory) as db, pytest.raises(InvalidEntry, match="needs a reason"):
        void_entry(db, ORG, original.id, by=BY, reason="  ", timezone=TZ, now=NOW)
    with transaction(factory) as db:
        amended = amend_entry(db, ORG, original.id, replace(original.to_input(), minutes=10), by=BY,
                              reason="typo", timezone=TZ, now=NOW).entries[0]
    with transaction(factory) as db, pytest.raises(AlreadyCorrected) as caught:
        void_entry(db, ORG, original.id, by=BY, reason="again", timezone=TZ, now=NOW)
    assert caught.value.corrected_by == amended.id and "latest version" in caught.value.hint
    with transaction(factory) as db:
        void = void_entry(db, ORG, amended.id, by=BY, reason="duplicate", timezone=TZ, now=NOW).entries[0]
    with transaction(factory) as db, pytest.raises(InvalidEntry, match="void cannot be amended"):
        amend_entry(db, ORG, void.id, original.to_input(), by=BY, reason="x", timezone=TZ, now=NOW)
    with transaction(factory) as db, pytest.raises(LedgerNotFound):
        void_entry(db, "other-org", original.id, by=BY, reason="x", timezone=TZ, now=NOW)


def test_an_amendment_may_not_overlap_other_time_but_may_overlap_itself(factory) -> None:
    first = recorded(factory)
    second = recorded(factory, start=first.end, minutes=15)
    with transaction(factory) as db:
        amend_entry(db, ORG, first.id, replace(first.to_input(), start=first.start - timedelta(minutes=5)),
                    by=BY, reason="started earlier", timezone=TZ, now=NOW)
    with transaction(factory) as db, pytest.raises(OverlapError) as caught:
        amend_entry(db, ORG, second.id, replace(second.to_input(), start=first.start), by=BY, reason="x",
                    timezone=TZ, now=NOW)
    assert caught.value.conflict.corrects_id == first.id


def test_correcting_a_closed_month_needs_permission_and_is_late_once_locked(factory) -> None:
    with transaction(factory) as db:
        october = record_entry(db, entry(start=datetime(2026, 10, 5, 14, 0, tzinfo=UTC)), timezone=TZ, now=NOW,
                               allow_closed_month=True).entries[0]
        lock_month(db, ORG, october.patient_id, "2026-10", "Practitioner/biller", now=NOW)
    with transaction(factory) as db, pytest.raises(MonthClosed):
        void_entry(db, ORG, october.id, by=BY, reason="never happened", timezone=TZ, now=NOW)
    with transaction(factory) as db:
        result = void_entry(db, ORG, october.id, by=BY, reason="never happened", timezone=TZ, now=NOW,
                            allow_closed_month=True)
    assert result.late and result.entries[0].late and "flagged for the biller" in result.message


def test_minutes_per_program_and_role_apply_corrections(factory) -> None:
    a = recorded(factory, minutes=20)
    b = recorded(factory, start=a.end, minutes=15, program="bhi", activity="behavioral-assessment")
    c = recorded(factory, performer=DOCTOR, role="billing-practitioner", minutes=10)
    recorded(factory, start=b.end, minutes=7)
    with transaction(factory) as db:
        amend_entry(db, ORG, a.id, replace(a.to_input(), start=a.start - timedelta(minutes=5), minutes=25),
                    by=BY, reason="more", timezone=TZ, now=NOW)
        void_entry(db, ORG, c.id, by=BY, reason="not billable", timezone=TZ, now=NOW)
    with factory() as db:
        totals = month_minutes(db, ORG, "pat-1", "2026-11")
    assert {(line.program, line.role): line.minutes for line in totals.lines} == {
        ("bhi", "clinical-staff"): 15, ("ccm", "clinical-staff"): 32}
    assert totals.total("ccm") == 32 and totals.total("ccm", ("billing-practitioner",)) == 0
    assert totals.by_program() == {"bhi": 15, "ccm": 32}


def test_concurrent_corrections_of_one_entry_give_one_winner(factory) -> None:
    original = recorded(factory)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def correct(n: int) -> None:
        barrier.wait()
        try:
            with transaction(factory) as db:
                void_entry(db, ORG, original.id, by=BY, reason=f"try {n}", timezone=TZ, now=NOW)
            outcomes.append("ok")
        except AlreadyCorrected:
            outcomes.append("refused")

    threads = [threading.Thread(target=correct, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] + ["refused"] * 5
