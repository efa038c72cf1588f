"""The month-end rollup over real HTTP: Backend Services facts, versioned claims, safe re-runs."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select

from smart_app.billing.claims import month_claims
from smart_app.billing.models import ClaimRow
from smart_app.billing.rollup import RollupReport, run_rollup
from smart_app.db import transaction
from smart_app.launch.organizations import get_organization
from smart_app.services import build_context
from tests.stack import Stack
from tests.test_capture_api import api, earlier_today, launch

MONTH = dt.datetime.now(ZoneInfo("America/New_York")).strftime("%Y-%m")


def rollup(stack: Stack, source: str = "ehr") -> RollupReport:
    async def go() -> RollupReport:
        app = build_context(stack.settings)
        try:
            with transaction(app.sessions) as db:
                org = get_organization(db, stack.organization.id)
            return await run_rollup(app, org, MONTH, source=source)
        finally:
            await app.http.aclose()
            app.engine.dispose()
    return asyncio.run(go())


def claims(stack: Stack) -> list:
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            return month_claims(db, stack.organization.id, MONTH)
    finally:
        app.engine.dispose()


def versions(stack: Stack, patient_id: str) -> list[tuple[int, str]]:
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            rows = db.scalars(select(ClaimRow).where(ClaimRow.patient_id == patient_id)
                              .order_by(ClaimRow.version)).all()
            return [(r.version, r.status) for r in rows]
    finally:
        app.engine.dispose()


def record(stack: Stack, headers: dict, minutes: int, minutes_ago: int) -> None:
    date, time = earlier_today(minutes_ago)
    made = api(stack, "POST", "/entries", headers, json={
        "program": "ccm", "activity": "care-plan-update", "date": date, "time": time, "minutes": minutes})
    assert made.status_code == 201, made.text


def test_rollup_proposes_claims_and_reruns_change_nothing(stack: Stack) -> None:
    nurse, _ = launch(stack, "ccm-two-chronic", user="pr-nurse")
    record(stack, nurse, 22, 700)
    launch(stack, "acute-only", user="pr-nurse")  # evaluated, nothing billable

    first = rollup(stack)
    assert first.errors == []
    assert first.patients >= 2 and first.billable >= 1
    claim = next(c for c in claims(stack) if c.patient_id == "ccm-two-chronic")
    assert claim.status == "proposed"
    assert [(line.code, line.units) for line in claim.claim.lines] == [("99490", 1)]
    line = claim.claim.lines[0]
    assert line.minutes == 20 and line.minutes_by_role == {"clinical-staff": 20}
    assert {d.code for d in claim.claim.diagnoses} == {"E11.9", "I10"}
    assert claim.claim.consents and claim.claim.consents[0].program == "ccm"
    assert claim.claim.coverage and claim.claim.coverage.startswith("Coverage/")
    assert claim.claim.patient_name

    again = rollup(stack)
    assert again.new_versions == 0 and again.unchanged == again.patients
    assert versions(stack, "ccm-two-chronic") == [(1, "proposed")]

    record(stack, nurse, 20, 600)
    third = rollup(stack)
    assert third.new_versions >= 1
    assert versions(stack, "ccm-two-chronic") == [(1, "superseded"), (2, "proposed")]
    newest = next(c for c in claims(stack) if c.patient_id == "ccm-two-chronic")
    assert [(line.code, line.units) for line in newest.claim.lines] == [("99490", 1), ("99439", 1)]

    from_cache = rollup(stack, source="cache")
    assert from_cache.errors == [] and from_cache.new_versions == 0


def test_each_fact_on_the_claim_says_where_it_came_from(stack: Stack) -> None:
    from smart_app.billing.exports import render_superbill, superbill_claims
    from tests.test_consent_capture import ALL_ELEMENTS

    # BHI, whose consent is in the EHR (issue 15: it was labelled as the app's).
    bh, _ = launch(stack, "bhi-depression-phq9", user="pr-bh-care-manager")
    date, time = earlier_today(400)
    made = api(stack, "POST", "/entries", bh, json={"program": "bhi", "activity": "behavioral-assessment",
                                                   "date": date, "time": time, "minutes": 25})
    assert made.status_code == 201, made.text
    # CCM, whose consent the care manager records in the app.
    cm, _ = launch(stack, "ccm-no-consent", user="pr-care-manager")
    consent = api(stack, "POST", "/consents", cm, json={
        "program": "ccm", "method": "verbal", "obtained_on": earlier_today(1000)[0], **ALL_ELEMENTS})
    assert consent.status_code == 201, consent.text
    app_consent = consent.json()["consent"]["id"]
    record(stack, cm, 22, 300)
    assert rollup(stack).errors == []

    by_patient = {c.patient_id: c.claim for c in claims(stack)}
    bhi, ccm = by_patient["bhi-depression-phq9"], by_patient["ccm-no-consent"]
    assert [(c.program, c.source, c.consent_id) for c in bhi.consents] == [
        ("bhi", "ehr", "bhi-depression-phq9-consent-bhi")]
    assert bhi.consents[0].origin == "from the EHR's Consent/bhi-depression-phq9-consent-bhi"
    assert [(c.program, c.source, c.consent_id) for c in ccm.consents] == [("ccm", "app", app_consent)]
    assert ccm.consents[0].origin == f"recorded in the app (consent record {app_consent})"
    assert bhi.diagnoses and all(d.origin == f"from the EHR's Condition/{d.condition_id}" for d in bhi.diagnoses)
    assert bhi.coverage_origin == "from the EHR's Coverage/bhi-depression-phq9-coverage"

    # The superbill prints the same, truthfully.
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            org = get_organization(db, stack.organization.id)
            assert org is not None
            chosen = superbill_claims(db, org, MONTH, include_proposed=True)
    finally:
        app.engine.dispose()
    html = render_superbill(chosen, org, MONTH, "html").decode()
    assert "Behavioral Health Integration: " in html
    assert "(from the EHR&#39;s Consent/bhi-depression-phq9-consent-bhi)" in html
    assert f"(recorded in the app (consent record {app_consent}))" in html
    assert f"(from the EHR&#39;s Condition/{bhi.diagnoses[0].condition_id})" in html
    assert "(app)" not in html
