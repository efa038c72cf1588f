"""A signed care plan against Medplum's FHIR engine: the CarePlan and Goals the app writes (and the updates that
retire them) pass Medplum's validator, and the outbox writes them to Medplum once, in a transaction or one by one,
with the CarePlan's Goal references resolved; a newer version revokes the old plan and cancels its Goals there."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, date, datetime

import httpx
import pytest

from smart_app.billing.care_plan_resources import (
    care_plan_document,
    care_plan_resource,
    goal_resources,
    plan_identifier,
    retired_copy,
)
from smart_app.billing.care_plan_share import share_version
from smart_app.billing.outbox import DeliveryReport, deliver, outbox_rows
from smart_app.db import transaction
from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.fhir_client import FhirClient
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.care_plans import CarePlanVersion, load_templates, seed
from smart_app.statuses import CarePlanStatus, OutboxStatus
from tests.databases import sessions_for
from tests.interop.conftest import Medplum
from tests.interop.test_medplum_gateway import capabilities

PATIENT = "ccm-two-chronic"
ORG = "org-medplum-care-plan"
SIGNER = "Practitioner/pr-billing-md"


@pytest.fixture(scope="module")
def medplum_caps(medplum: Medplum) -> EhrCapabilities:
    return capabilities(medplum.fhir)


def version(number: int, template: str = "diabetes", **changes: object) -> CarePlanVersion:
    """An established version as the ledger hands it back."""
    content = dataclasses.replace(seed(load_templates()[template], (), date(2026, 11, 2)), **changes)
    return CarePlanVersion(str(uuid.uuid4()), "plan", ORG, PATIENT, number, CarePlanStatus.ESTABLISHED, template,
                           content, SIGNER, datetime(2026, 11, 2, 15, tzinfo=UTC), date(2026, 11, 2),
                           date(2027, 11, 2))


def test_the_care_plan_goals_and_their_retirement_pass_medplums_validator(medplum: Medplum) -> None:
    for template in sorted(load_templates()):
        signed = version(2, template)
        goals = goal_resources(signed)
        plan = care_plan_resource(signed, goals, conditions=[f"Condition/{PATIENT}-dm"],
                                  replaces="CarePlan/older")
        document = care_plan_document(signed, b"%PDF-1.4 copy", created=datetime(2026, 11, 2, 15, tzinfo=UTC),
                                      replaces="DocumentReference/older")
        for resource in (*goals, plan, document, retired_copy(plan, "p1"), retired_copy(goals[0], "g1"),
                         retired_copy(document, "d1")):
            assert medplum.validate(resource) == [], (template, resource["resourceType"])


def _deliver(medplum: Medplum, caps: EhrCapabilities, database_url: str, signed: CarePlanVersion) -> DeliveryReport:
    with sessions_for(database_url) as sessions:
        with transaction(sessions) as db:
            save_organizations(db, [Organization(id=ORG, name="Medplum practice", issuer=medplum.fhir,
                                                 client_id="x")])
            share_version(db, signed, "CarePlan", practice="Medplum practice")

        async def go() -> DeliveryReport:
            async with httpx.AsyncClient(timeout=20) as http:
                return await deliver(sessions, FhirClient(http, medplum.fhir, None), caps, ORG)
        report = asyncio.run(go())
        with transaction(sessions) as db:
            failures = [f"{r.resource_type}: {r.last_error}" for r in outbox_rows(db, ORG, status=OutboxStatus.FAILED)]
        assert not failures, failures
        return report


def _search(medplum: Medplum, kind: str, params: dict) -> list[dict]:
    found = httpx.get(f"{medplum.fhir}/{kind}", params=params, timeout=20).json()
    return [e["resource"] for e in found.get("entry", [])]


def _read(medplum: Medplum, reference: str) -> dict:
    return httpx.get(f"{medplum.fhir}/{reference}", timeout=20).json()


@pytest.mark.parametrize("transactions", [True, False], ids=["transaction", "one-by-one"])
def test_a_signed_plan_reaches_medplum_once_and_a_new_version_revokes_it(
        medplum: Medplum, medplum_caps: EhrCapabilities, database_url: str, transactions: bool) -> None:
    caps = dataclasses.replace(medplum_caps, transaction=transactions)
    assert caps.can("CarePlan", "create") and caps.can("Goal", "update")
    first = version(1)
    report = _deliver(medplum, caps, database_url, first)
    assert report.delivered == len(first.content.goals) + 1 and report.failed == 0, report
    again = _deliver(medplum, caps, database_url, first)
    assert again.delivered == 0
    token = "{system}|{value}".format(**plan_identifier(ORG, first.id))
    (plan,) = _search(medplum, "CarePlan", {"identifier": token})
    assert medplum.validate(plan) == []
    goals = [_read(medplum, g["reference"]) for g in plan["goal"]]
    assert [g["resourceType"] for g in goals] == ["Goal"] * len(first.content.goals)
    assert [g["description"]["text"] for g in goals] == [g.description for g in first.content.goals]

    second = version(2, prognosis="Better with the new plan.")
    report = _deliver(medplum, caps, database_url, second)
    # The new Goals and CarePlan, the old CarePlan revoked and each old Goal cancelled.
    assert report.delivered == 2 * len(first.content.goals) + 2 and report.failed == 0, report
    token = "{system}|{value}".format(**plan_identifier(ORG, second.id))
    (new,) = _search(medplum, "CarePlan", {"identifier": token})
    assert new["replaces"] == [{"reference": f"CarePlan/{plan['id']}"}]
    old = _read(medplum, f"CarePlan/{plan['id']}")
    assert old["status"] == "revoked" and medplum.validate(old) == []
    assert all(_read(medplum, f"Goal/{g['id']}")["lifecycleStatus"] == "cancelled" for g in goals)
    assert _deliver(medplum, caps, database_url, second).delivered == 0
