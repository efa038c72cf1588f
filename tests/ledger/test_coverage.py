"""The ledger inside the audit chain: every covered row written by the app verifies, and a row edited, deleted or
inserted with SQL (alone, or together with its audit record) is named by table and id, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.claims import store_claim
from smart_app.db import transaction
from smart_app.ledger.attestations import record_attestation
from smart_app.ledger.audit import ENTRY_RECORDED, LEDGER_BASELINED, TIMER_STARTED, TIMER_STOPPED, recent_events
from smart_app.ledger.consents import ConsentInput, mark_writeback, record_consent, withdraw_consent
from smart_app.ledger.coverage import BaselineRefused, baseline, verify
from smart_app.ledger.entries import amend_entry, record_entry, void_entry
from smart_app.ledger.models import TimeEntryRow, TimerRow
from smart_app.ledger.records import AuditCoverageRow, AuditEventRow, ConsentRow
from smart_app.ledger.scales import record_scale
from smart_app.ledger.timers import discard_timer, start_timer, stop_timer
from smart_app.rules.loader import rule_set_named
from tests.billing.claims import ccm_claim
from tests.ledger.conftest import NOW, NURSE, ORG, TZ, entry, timer_input

TE = TimeEntryRow.__table__


def november_claim(service_date: date):  # noqa: ANN201 - a ProposedClaim
    claim = ccm_claim()
    lines = tuple(replace(line, service_date=service_date) for line in claim.lines)
    return replace(claim, organization_id=ORG, month="2026-11", lines=lines)


def check(factory: sessionmaker[Session]):  # noqa: ANN201 - the VerifyReport
    with transaction(factory) as db:
        return verify(db)


def named(report) -> set[tuple[str, str, str]]:  # noqa: ANN001
    return {(p.table, p.row_id, p.kind) for p in report.problems if p.table is not None}


def tamper(factory: sessionmaker[Session], *statements: object) -> None:
    """Change tables behind the app's back, as someone with database access could."""
    with transaction(factory) as db:
        for statement in statements:
            db.execute(statement)  # type: ignore[call-overload]


def record_all(factory: sessionmaker[Session]) -> dict[str, str]:
    """One of every covered write, as the app makes them; the ids of a few rows."""
    with transaction(factory) as db:
        first = record_entry(db, entry(), timezone=TZ, now=NOW).entries[0]
    with transaction(factory) as db:
        amended = amend_entry(db, ORG, first.id, entry(minutes=25), by=NURSE, reason="typo", timezone=TZ,
                              now=NOW).entries[0]
    with transaction(factory) as db:
        second = record_entry(db, entry(start=NOW - timedelta(hours=5), minutes=10), timezone=TZ, now=NOW).entries[0]
        void_entry(db, ORG, second.id, by=NURSE, reason="wrong patient", timezone=TZ, now=NOW)
    with transaction(factory) as db:
        timer = start_timer(db, timer_input(), timezone=TZ, now=NOW - timedelta(hours=2))
    with transaction(factory) as db:
        stopped = stop_timer(db, ORG, timer.id, by=NURSE, timezone=TZ, now=NOW - timedelta(hours=1, minutes=45))
    with transaction(factory) as db:
        other = start_timer(db, timer_input(), timezone=TZ, now=NOW - timedelta(minutes=30))
    with transaction(factory) as db:
        discard_timer(db, ORG, other.id, by=NURSE, now=NOW - timedelta(minutes=29))
    with transaction(factory) as db:
        consent = record_consent(db, ConsentInput(ORG, "pat-1", "ccm", "verbal", True, True, True, True,
                                                  date(2026, 11, 2), NURSE), now=NOW, timezone=TZ)
    with transaction(factory) as db:
        mark_writeback(db, consent.id, "written", "Written to the EHR as Consent/9.", "9")
        mark_writeback(db, consent.id, "written", "Written to the EHR as Consent/9.", "9")  # nothing new: no event
        withdraw_consent(db, ORG, consent.id, by=NURSE, on=date(2026, 11, 15), note="", now=NOW, timezone=TZ)
        record_attestation(db, ORG, "pat-1", "cond-1", "I10", True, NURSE, now=NOW)
    with transaction(factory) as db:
        record_scale(db, rule_set_named("medicare-2026"), ORG, "pat-1", "PHQ-9", 12, date(2026, 11, 3), NURSE, TZ,
                     now=NOW)
        _, claim = store_claim(db, november_claim(date(2026, 11, 30)), now=NOW)
    with transaction(factory) as db:
        store_claim(db, november_claim(date(2026, 11, 29)), now=NOW)  # a new version supersedes the first
    return {"entry": first.id, "amendment": amended.id, "timer": stopped.timer.id, "consent": consent.id,
            "claim": claim.id}


def test_every_ledger_write_is_covered_and_verifies(factory: sessionmaker[Session]) -> None:
    ids = record_all(factory)
    report = check(factory)
    assert report.ok, [str(p) for p in report.problems]
    with factory() as db:
        rows = db.scalar(select(AuditCoverageRow.seq).where(AuditCoverageRow.row_id == ids["timer"]))
        stopped = db.scalar(select(AuditEventRow.seq).where(AuditEventRow.action == TIMER_STOPPED,
                                                            AuditEventRow.subject == f"Timer/{ids['timer']}"))
        # The timer's record names the stop, the event that last changed it, not the start.
        assert rows == stopped
        actions = [e.action for e in recent_events(db, 100)]
    assert actions.count("consent.writeback") == 1
    # 5 entry rows (with the timer's, an amendment and a void), 2 timers, 2 consents, an attestation, a scale, 2 claims
    assert report.ledger_rows_checked == 13
    assert actions.count(TIMER_STARTED) == 2 and actions.count(ENTRY_RECORDED) == 2


def test_an_edited_row_is_named(factory: sessionmaker[Session]) -> None:
    ids = record_all(factory)
    tamper(factory, update(TE).where(TE.c.id == ids["entry"]).values(minutes=600))
    report = check(factory)
    assert not report.ok
    assert named(report) == {("time_entries", ids["entry"], "row-edited")}
    assert f"time_entries row {ids['entry']}: it was changed after event" in str(report.problems[0])


def test_a_deleted_row_is_named(factory: sessionmaker[Session]) -> None:
    ids = record_all(factory)
    # The amendment is the newest row of its chain, so nothing references it.
    tamper(factory, delete(TE).where(TE.c.id == ids["amendment"]))
    assert named(check(factory)) == {("time_entries", ids["amendment"], "row-deleted")}


def test_an_inserted_row_is_named(factory: sessionmaker[Session]) -> None:
    record_all(factory)
    forged = str(uuid.uuid4())
    with factory() as db:
        model = db.execute(select(TE).limit(1)).mappings().one()
    tamper(factory, insert(TE).values({**model, "id": forged, "corrects_id": None, "minutes": 60}))
    assert named(check(factory)) == {("time_entries", forged, "row-inserted")}


@pytest.mark.parametrize("table", [TimerRow.__table__, ConsentRow.__table__])
def test_edited_rows_of_other_tables_are_named(factory: sessionmaker[Session], table: object) -> None:
    ids = record_all(factory)
    row_id = ids["timer"] if table is TimerRow.__table__ else ids["consent"]
    column = "minutes" if table is TimerRow.__table__ else "obtained_on"
    value = 90 if column == "minutes" else date(2026, 10, 1)
    tamper(factory, update(table).where(table.c.id == row_id).values({column: value}))  # type: ignore[attr-defined]
    assert named(check(factory)) == {(table.name, row_id, "row-edited")}  # type: ignore[attr-defined]


def test_a_row_edited_with_its_audit_record_is_named(factory: sessionmaker[Session]) -> None:
    ids = record_all(factory)
    cov = AuditCoverageRow.__table__
    tamper(factory, update(TE).where(TE.c.id == ids["entry"]).values(minutes=600),
           update(cov).where(cov.c.row_id == ids["entry"]).values(digest="0" * 64))
    assert named(check(factory)) == {("time_entries", ids["entry"], "record-edited"),
                                     ("time_entries", ids["entry"], "row-edited")}


def test_a_row_deleted_with_its_audit_record_is_named(factory: sessionmaker[Session]) -> None:
    ids = record_all(factory)
    cov = AuditCoverageRow.__table__
    tamper(factory, delete(TE).where(TE.c.id == ids["amendment"]), delete(cov).where(cov.c.row_id == ids["amendment"]))
    assert named(check(factory)) == {("time_entries", ids["amendment"], "row-deleted")}


def test_a_row_inserted_with_a_made_up_audit_record_is_named(factory: sessionmaker[Session]) -> None:
    record_all(factory)
    forged = str(uuid.uuid4())
    with factory() as db:
        model = db.execute(select(TE).limit(1)).mappings().one()
        cov = db.execute(select(AuditCoverageRow.__table__).where(AuditCoverageRow.row_id == model["id"])).one()
    tamper(factory, insert(TE).values({**model, "id": forged, "corrects_id": None}),
           insert(AuditCoverageRow.__table__).values(table_name="time_entries", row_id=forged, seq=cov.seq,
                                                     digest=cov.digest))
    problems = named(check(factory))
    assert ("time_entries", forged, "row-inserted") in problems


def test_rows_written_before_the_upgrade_are_covered_once_by_a_baseline(factory: sessionmaker[Session]) -> None:
    ids = record_all(factory)
    # As if written by an older version: no event covers them, no audit record.
    tamper(factory, delete(AuditCoverageRow.__table__), delete(AuditEventRow.__table__))
    assert {kind for _, _, kind in named(check(factory))} == {"row-inserted"}
    with transaction(factory) as db:
        assert baseline(db, "command-line:ops") == 13
    assert check(factory).ok
    with transaction(factory) as db, pytest.raises(BaselineRefused) as refused:
        baseline(db, "command-line:ops")
    assert "audit verify" in refused.value.hint
    with factory() as db:
        assert db.scalar(select(AuditEventRow.actor).where(AuditEventRow.action == LEDGER_BASELINED)) == \
            "command-line:ops"
    tamper(factory, update(TE).where(TE.c.id == ids["entry"]).values(minutes=600))
    assert named(check(factory)) == {("time_entries", ids["entry"], "row-edited")}
