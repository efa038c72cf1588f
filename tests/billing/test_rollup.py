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
