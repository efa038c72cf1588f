"""Threat: someone with database access rewrites or removes the record of who recorded what time.

An entry is recorded through the API, which appends to the hash-chained audit log; `smart-app audit
verify` (the real command, on the stack's database) passes. A row edited with SQL, then a row
deleted, must each make it fail and name the event; putting the original back makes it pass again.
"""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select, text

from smart_app.ledger.records import AuditEventRow
from tests.security.helpers import database, launch, manual_entry
from tests.stack import TEST_SECRET, Stack


def audit_verify(stack: Stack) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMART_APP_DATABASE_URL": stack.settings.database_url,
           "SMART_APP_SECRET_KEY": TEST_SECRET, "SMART_APP_DATA_DIR": str(stack.settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "smart_app.cli", "audit", "verify"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_tampered_audit_row_is_detected(secure_stack: Stack) -> None:
    session = launch(secure_stack, "ccm-two-chronic", user="pr-nurse")
    made = session.api("POST", "/entries", json=manual_entry(900, minutes=7))
    assert made.status_code == 201, made.text
    entry_id = made.json()["entries"][0]["id"]
    with database(secure_stack) as db:
        event = db.scalars(select(AuditEventRow).where(AuditEventRow.action == "entry.recorded",
                                                       AuditEventRow.detail.contains(entry_id))).one()
        seq, detail = event.seq, event.detail
        original = {c.name: getattr(event, c.name) for c in AuditEventRow.__table__.columns}
    assert '"minutes":7' in detail

    intact = audit_verify(secure_stack)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "Audit chain intact" in intact.stdout, intact.stdout
    print(secure_stack.settings.database_url, intact.stdout)

    # Seven minutes become seventy, directly in the database.
    with database(secure_stack) as db:
        db.execute(text("UPDATE audit_events SET detail = :detail WHERE seq = :seq"),
                   {"detail": detail.replace('"minutes":7', '"minutes":70'), "seq": seq})
    with database(secure_stack) as db:
        print("rows", db.execute(text("SELECT seq, action FROM audit_events")).all())
    edited = audit_verify(secure_stack)
    assert edited.returncode == 1
    assert f"event {seq}: was changed after it was written" in edited.stdout
    assert "Audit chain BROKEN" in edited.stdout and "Traceback" not in edited.stderr

    # The event is removed altogether.
    with database(secure_stack) as db:
        db.execute(text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": seq})
    deleted = audit_verify(secure_stack)
    assert deleted.returncode == 1
    assert f"event {seq} is missing" in deleted.stdout or f"events {seq} to" in deleted.stdout, deleted.stdout

    # Restoring exactly what was written makes the chain whole again (the later tests share this database).
    with database(secure_stack) as db:
        db.add(AuditEventRow(**original))
    restored = audit_verify(secure_stack)
    assert restored.returncode == 0, restored.stdout
