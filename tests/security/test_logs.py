"""Threat: logs (kept for months, read by operations staff, shipped to other systems) hold notes, patient ids,
codes or tokens. Database errors name their statement but never its values; the app logs a refused request by
its kind and status, not by its message (which may repeat what the user sent); the access log's redaction of
`/launch` and `/callback` is in `test_serve.py`."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from smart_app.db import make_engine, utcnow
from smart_app.ledger.models import TimeEntryRow
from tests.stack import Stack

NOTE = "Patient cried about her divorce"


def test_a_database_error_names_the_statement_but_not_its_values(database_url: str) -> None:
    engine = make_engine(database_url)
    now = utcnow()
    row = {"id": str(uuid.uuid4()), "organization_id": "no-such-org", "patient_id": "pat-77", "performer": "P/1",
           "role": "clinical-staff", "program": "ccm", "activity": "patient-call", "starts_at": now, "ends_at": now,
           "minutes": 5, "month": "2026-11", "note": NOTE, "source": "manual", "shared": False, "kind": "entry",
           "reason": "", "recorded_by": "P/1", "recorded_at": now, "late": False}
    try:
        with engine.begin() as connection, pytest.raises(IntegrityError) as failed:
            connection.execute(insert(TimeEntryRow), row)
    finally:
        engine.dispose()
    text = str(failed.value)
    assert "INSERT INTO time_entries" in text
    assert NOTE not in text and "pat-77" not in text
    assert "parameters hidden" in text


def test_a_refused_request_is_logged_by_kind_not_by_what_the_user_sent(stack: Stack,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="smart_app")
    marker = f"https://{uuid.uuid4().hex}.example.org/fhir"
    answer = httpx.get(f"{stack.app_url}/launch", params={"iss": marker, "launch": "x"})
    assert answer.status_code == 400 and marker in answer.text  # the person still reads what was wrong
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("smart_app")]
    assert "user-facing error on /launch: LaunchError (400)" in logged
    assert not any(marker in line for line in logged)
