"""Threat: someone with database access rewrites or removes the record of who recorded what time, or the time.

Entries are recorded through the API, which appends to the hash-chained audit log; `smart-app audit
verify` (the real command, on the stack's database) passes. An event edited with SQL, an event
deleted from the middle, and the last event deleted (caught with the hash kept from an earlier run,
`--anchor`) must each make it fail and say which event; restoring the rows makes it pass again.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text

from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.records import AuditEventRow
from tests.security.helpers import Launched, database, launch, manual_entry, smart_app_command
from tests.stack import Stack


@pytest.fixture
def audit_verify(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> object:
    """`smart-app audit verify [ARGS]` on a stack's database: (exit status, output)."""

    def run(stack: Stack, *args: str) -> tuple[int, str]:
        status, output = smart_app_command(stack, monkeypatch, capsys, "audit", "verify", *args)
        assert "Traceback" not in output
        return status, output

    return run


def record(session: Launched, minutes: int) -> AuditEventRow:
    """Record an entry through the API; the audit event it appended."""
    made = session.api("POST", "/entries", json=manual_entry(minutes))
    assert made.status_code == 201, made.text
    entry_id = made.json()["entries"][0]["id"]
    with database(session.stack) as db:
        return db.scalars(select(AuditEventRow).where(AuditEventRow.action == "entry.recorded",
                                                      AuditEventRow.detail.contains(entry_id))).one()


def columns(event: AuditEventRow) -> dict:
    return {c.name: getattr(event, c.name) for c in AuditEventRow.__table__.columns}


def sql(stack: Stack, statement: str, **params: object) -> None:
    with database(stack) as db:
        db.execute(text(statement), params)


def restore(stack: Stack, *events: AuditEventRow) -> None:
    with database(stack) as db:
        for event in events:
            db.merge(AuditEventRow(**columns(event)))


def test_a_tampered_audit_row_is_detected(secure_stack: Stack, audit_verify: object) -> None:
    session = launch(secure_stack, "ccm-two-chronic", user="pr-nurse")
    first = record(session, 7)
    last = record(session, 3)
    assert '"minutes":7' in first.detail
    status, output = audit_verify(secure_stack)
    assert status == 0, output
    assert f"Audit chain intact: {last.seq} events, last hash {last.hash}" in output

    # Seven minutes become seventy, directly in the database.
    sql(secure_stack, "UPDATE audit_events SET detail = :detail WHERE seq = :seq",
        detail=first.detail.replace('"minutes":7', '"minutes":70'), seq=first.seq)
    status, output = audit_verify(secure_stack)
    assert status == 1
    assert f"event {first.seq}: was changed after it was written" in output
    assert "Audit chain BROKEN" in output

    # The event is removed from the middle of the chain.
    sql(secure_stack, "DELETE FROM audit_events WHERE seq = :seq", seq=first.seq)
    status, output = audit_verify(secure_stack)
    assert status == 1
    assert f"event {first.seq} is missing" in output, output
    restore(secure_stack, first)

    # The newest event is removed: the chain alone cannot tell, the hash kept from the earlier run can.
    sql(secure_stack, "DELETE FROM audit_events WHERE seq = :seq", seq=last.seq)
    status, output = audit_verify(secure_stack, "--anchor", last.hash)
    assert status == 1
    assert f"the kept hash {last.hash} is not in the chain" in output
    restore(secure_stack, last)

    # Exactly what was written, put back, verifies again (the other tests share this database).
    status, output = audit_verify(secure_stack, "--anchor", last.hash)
    assert status == 0, output


def test_a_ledger_row_changed_removed_or_added_in_the_database_is_named(secure_stack: Stack,
                                                                         audit_verify: object) -> None:
    session = launch(secure_stack, "ccm-two-chronic", user="pr-nurse", address="127.0.0.31")
    made = session.api("POST", "/entries", json=manual_entry(7))
    assert made.status_code == 201, made.text
    entry_id = made.json()["entries"][0]["id"]
    status, output = audit_verify(secure_stack)
    assert status == 0, output
    with database(secure_stack) as db:
        table = TimeEntryRow.__table__
        original = dict(db.execute(table.select().where(table.c.id == entry_id)).mappings().one())

    # Seven minutes become six hundred, directly in the database: the month's total would jump.
    sql(secure_stack, "UPDATE time_entries SET minutes = 600 WHERE id = :id", id=entry_id)
    status, output = audit_verify(secure_stack)
    assert status == 1
    assert f"time_entries row {entry_id}: it was changed after event" in output
    assert "Audit chain BROKEN" in output
    sql(secure_stack, "UPDATE time_entries SET minutes = 7 WHERE id = :id", id=entry_id)
    assert audit_verify(secure_stack)[0] == 0

    # The entry is deleted.
    sql(secure_stack, "DELETE FROM time_entries WHERE id = :id", id=entry_id)
    status, output = audit_verify(secure_stack)
    assert status == 1
    assert f"time_entries row {entry_id}: recorded by event" in output and "deleted outside the app" in output
    with database(secure_stack) as db:
        db.execute(TimeEntryRow.__table__.insert().values(original))
    assert audit_verify(secure_stack)[0] == 0

    # A made-up entry is added beside it.
    forged = str(uuid.uuid4())
    with database(secure_stack) as db:
        db.execute(TimeEntryRow.__table__.insert().values({**original, "id": forged, "minutes": 60}))
    status, output = audit_verify(secure_stack)
    assert status == 1
    assert f"time_entries row {forged}: no audit event recorded it: it was added outside the app." in output
    sql(secure_stack, "DELETE FROM time_entries WHERE id = :id", id=forged)
    assert audit_verify(secure_stack)[0] == 0


def test_launches_captures_and_biller_work_are_audit_events(secure_stack: Stack) -> None:
    session = launch(secure_stack, "ccm-two-chronic", user="pr-nurse", address="127.0.0.31")
    started = session.api("POST", "/timers", json={"program": "ccm", "activity": "patient-call"})
    assert started.status_code == 201, started.text
    stopped = session.api("POST", f"/timers/{started.json()['timer']['id']}/discard")
    assert stopped.status_code == 200, stopped.text
    with database(secure_stack) as db:
        events = db.scalars(select(AuditEventRow).where(AuditEventRow.seq > 0).order_by(AuditEventRow.seq.desc())
                            .limit(3)).all()
    launched, timer_started, discarded = reversed(events)
    assert (launched.action, launched.subject, launched.actor) == ("launch", "Patient/ccm-two-chronic",
                                                                   "Practitioner/pr-nurse")
    assert launched.organization_id == secure_stack.organization.id
    assert (timer_started.action, discarded.action) == ("timer.started", "timer.discarded")
    assert '"covers":[["timers",' in discarded.detail
