"""Month locks per claim, over the stack: approving one patient's claim makes only that patient-month's later time
late; another patient's time the same day is on time."""

from __future__ import annotations

from smart_app.billing.claims import month_claims
from smart_app.db import transaction
from smart_app.services import build_context
from tests.billing.test_rollup import MONTH
from tests.stack import Stack, biller_headers
from tests.test_capture_api import api, earlier_today, launch


def _record(stack: Stack, headers: dict, minutes: int, minutes_ago: int) -> dict:
    date, time = earlier_today(minutes_ago)
    made = api(stack, "POST", "/entries", headers, json={
        "program": "ccm", "activity": "record-review", "date": date, "time": time, "minutes": minutes})
    assert made.status_code == 201, made.text
    return made.json()


def _claim_id(stack: Stack, patient_id: str) -> str:
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            return next(c.id for c in month_claims(db, stack.organization.id, MONTH) if c.patient_id == patient_id)
    finally:
        app.engine.dispose()


def test_approving_one_claim_locks_that_patient_month_only(stack: Stack) -> None:
    first, _ = launch(stack, "ccm-two-chronic", user="pr-nurse")
    _record(stack, first, 25, 900)
    second, _ = launch(stack, "complex-ccm-high", user="pr-nurse")
    _record(stack, second, 22, 860)
    biller = biller_headers(stack)
    run = api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH, "source": "ehr"})
    assert run.status_code == 200 and not run.json()["errors"], run.text
    approved = api(stack, "POST", f"/claims/{_claim_id(stack, 'ccm-two-chronic')}/approve", biller,
                   json={"note": "threshold met"})
    assert approved.status_code == 200, approved.text

    # Time for the other patient, logged after the approval, is on time.
    other = _record(stack, second, 5, 700)
    assert other["late"] is False and "late" not in other["message"]
    # Time for the approved patient is late, and the message says where it goes.
    late = _record(stack, first, 20, 600)  # 45 minutes in all: a 99439 unit on the corrected claim
    assert late["late"] is True
    assert "was already approved" in late["message"] and "corrected claim" in late["message"]
    # The next rollup proposes the corrected claim, with the late entry behind its new unit.
    again = api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH, "source": "ehr"})
    assert again.status_code == 200, again.text
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            claims = {c.patient_id: c for c in month_claims(db, stack.organization.id, MONTH)}
    finally:
        app.engine.dispose()
    assert claims["ccm-two-chronic"].claim.late_entries
    assert any("corrected claim" in w for w in claims["ccm-two-chronic"].claim.warnings)
    assert not claims["complex-ccm-high"].claim.late_entries
