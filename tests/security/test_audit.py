"""Threat: someone with database access rewrites or removes the record of who recorded what time.

Entries are recorded through the API, which appends to the hash-chained audit log; `smart-app audit
verify` (the real command, on the stack's database) passes. An event edited with SQL, an event
deleted from the middle, and the last event deleted (caught with the hash kept from an earlier run,
`--anchor`) must each make it fail and say which event; restoring the rows makes it pass again.
"""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select, text

from smart_app.ledger.records import AuditEventRow
from tests.security.helpers import Launched, database, launch, manual_entry
from tests.stack import TEST_SECRET, Stack


def audit_verify(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMART_APP_DATABASE_URL": stack.settings.database_url,
           "SMART_APP_SECRET_KEY": TEST_SECRET, "SMART_APP_DATA_DIR": str(stack.settings.data_dir)}
    done = subprocess.run([sys.executable, "-m", "smart_app.cli", "audit", "verify", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


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


def test_a_tampered_audit_row_is_detected(secure_stack: Stack) -> None:
    session = launch(secure_stack, "ccm-two-chronic", user="pr-nurse")
    first = record(session, 7)
    last = record(session, 3)
    assert '"minutes":7' in first.detail
    intact = audit_verify(secure_stack)
    assert intact.returncode == 0, intact.stdout
    assert f"last hash {last.hash}" in intact.stdout

    # Seven minutes become seventy, directly in the database.
    sql(secure_stack, "UPDATE audit_events SET detail = :detail WHERE seq = :seq",
        detail=first.detail.replace('"minutes":7', '"minutes":70'), seq=first.seq)
    edited = audit_verify(secure_stack)
    assert edited.returncode == 1
    assert f"event {first.seq}: was changed after it was written" in edited.stdout
    assert "Audit chain BROKEN" in edited.stdout

    # The event is removed from the middle of the chain.
    sql(secure_stack, "DELETE FROM audit_events WHERE seq = :seq", seq=first.seq)
    deleted = audit_verify(secure_stack)
    assert deleted.returncode == 1
    assert f"event {first.seq} is missing" in deleted.stdout, deleted.stdout
    restore(secure_stack, first)

    # The newest event is removed: the chain alone cannot tell, the hash kept from the earlier run can.
    sql(secure_stack, "DELETE FROM audit_events WHERE seq = :seq", seq=last.seq)
    truncated = audit_verify(secure_stack, "--anchor", last.hash)
    assert truncated.returncode == 1
    assert f"the kept hash {last.hash} is not in the chain" in truncated.stdout
    restore(secure_stack, last)

    # Exactly what was written, put back, verifies again (the other tests share this database).
    again = audit_verify(secure_stack, "--anchor", last.hash)
    assert again.returncode == 0, again.stdout
