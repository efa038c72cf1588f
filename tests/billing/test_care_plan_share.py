"""`billing.care_plan_share` on the outbox directly, on both databases, for what a page cannot stage: a version's
rows being sent by a worker at the very moment a newer version is signed, and a version signed while the EHR's
capabilities could not be read (the delivery pass's sweep queues it). The end-to-end paths over real HTTP are in
tests/test_care_plan_share.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.access.roles import TimeRole
from smart_app.billing.care_plan_resources import goal_identifier, plan_identifier
from smart_app.billing.care_plan_share import share_status, share_version, sweep
from smart_app.billing.fhir_resources import identifier_token
from smart_app.billing.models import OutboxRow
from smart_app.billing.outbox import RETIRING
from smart_app.db import transaction
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.care_plans import CarePlanVersion, establish, load_templates, save_draft, seed
from smart_app.statuses import OutboxStatus

ORG = "org-care-plan-share"
PATIENT = "ccm-two-chronic"
DOCTOR = "Practitioner/pr-billing-md"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def org(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(sessions) as db:
        save_organizations(db, [Organization(id=ORG, name="Care Plan Clinic", issuer="http://127.0.0.1:9/fhir",
                                             client_id="app")])
    return sessions


def signed(sessions: sessionmaker[Session], prognosis: str, at: datetime, *, share: bool) -> CarePlanVersion:
    """A draft saved and established (queued for the EHR as a CarePlan in the same transaction when `share`)."""
    content = seed(load_templates()["diabetes"], (), at.date()).to_json() | {"prognosis": prognosis}
    with transaction(sessions) as db:
        draft = save_draft(db, ORG, PATIENT, content, template="diabetes", by="Practitioner/pr-care-manager", now=at)
    with transaction(sessions) as db:
        version = establish(db, ORG, PATIENT, draft.id, by=DOCTOR, time_role=TimeRole.BILLING_PRACTITIONER,
                            on=at.date(), now=at)
        if share:
            share_version(db, version, "CarePlan", practice="Care Plan Clinic", now=at)
    return version


def rows(sessions: sessionmaker[Session]) -> dict[str, OutboxRow]:
    with sessions() as db:
        return {row.identifier: row for row in db.scalars(select(OutboxRow).where(OutboxRow.organization_id == ORG))}


def delivered(sessions: sessionmaker[Session], version: CarePlanVersion) -> None:
    """Stand in for a delivery: the version's rows done with the ids an EHR gave them."""
    with transaction(sessions) as db:
        for row in db.scalars(select(OutboxRow).where(OutboxRow.organization_id == ORG,
                                                      OutboxRow.identifier.contains(version.id))):
            row.status, row.fhir_id = OutboxStatus.DONE, f"{row.resource_type.lower()}-{row.id[:8]}"


def test_the_sweep_queues_a_plan_signed_without_the_ehrs_capabilities_and_retires_the_old(org) -> None:
    first = signed(org, "Good.", NOW, share=True)
    goals = len(first.content.goals)
    assert len(rows(org)) == goals + 1
    with transaction(org) as db:
        assert sweep(db, ORG, "Care Plan Clinic", "CarePlan", now=NOW) == 0, "nothing to do: it is queued"
        assert share_status(db, first, "CarePlan").state == "pending"
    delivered(org, first)
    old_plan = rows(org)[identifier_token(plan_identifier(ORG, first.id))]

    # Signed while the capabilities could not be read: nothing queued until the next delivery pass sweeps.
    second = signed(org, "Better.", NOW + timedelta(days=1), share=False)
    assert len(rows(org)) == goals + 1
    with transaction(org) as db:
        assert sweep(db, ORG, "Care Plan Clinic", "CarePlan", now=NOW + timedelta(days=1)) == 1
    found = rows(org)
    new_plan = found[identifier_token(plan_identifier(ORG, second.id))]
    assert new_plan.payload["replaces"] == [{"reference": f"CarePlan/{old_plan.fhir_id}"}]
    retirements = [r for r in found.values() if r.purpose == RETIRING]
    assert len(retirements) == goals + 1
    assert {r.payload.get("status") or r.payload.get("lifecycleStatus") for r in retirements} == {"revoked",
                                                                                                 "cancelled"}
    # Queued in the old version's month, after the new version's own rows.
    assert all(r.month == old_plan.month and r.created_at > new_plan.created_at for r in retirements)
    with transaction(org) as db:
        assert sweep(db, ORG, "Care Plan Clinic", "CarePlan", now=NOW + timedelta(days=1)) == 0
    assert len(rows(org)) == len(found), "sweeping again queues nothing"


def test_a_version_being_sent_when_a_newer_one_is_signed_is_retired_once_it_is_done(org) -> None:
    first = signed(org, "Good.", NOW, share=True)
    goal = identifier_token(goal_identifier(ORG, first.id, 1))
    with transaction(org) as db:
        # A worker holds the first Goal: it is being sent right now. The other rows wait unsent.
        db.execute(update(OutboxRow).where(OutboxRow.identifier == goal)
                   .values(leased_until=NOW + timedelta(days=2)))
    second = signed(org, "Better.", NOW + timedelta(days=1), share=True)
    found = rows(org)
    assert found[goal].status == OutboxStatus.PENDING, "a row being sent is not snatched from its worker"
    old = [r for i, r in found.items() if first.id in i and i != goal]
    assert old and all(r.status == OutboxStatus.WITHDRAWN and "version 4" in r.last_error for r in old)
    assert "replaces" not in found[identifier_token(plan_identifier(ORG, second.id))].payload
    with transaction(org) as db:
        db.execute(update(OutboxRow).where(OutboxRow.identifier == goal)
                   .values(status=OutboxStatus.DONE, fhir_id="goal-1", leased_until=None))
        assert sweep(db, ORG, "Care Plan Clinic", "CarePlan", now=NOW + timedelta(days=1)) == 1
    retire = rows(org)[f"{goal}:cancelled"]
    assert retire.purpose == RETIRING and retire.payload["id"] == "goal-1"
    assert retire.payload["lifecycleStatus"] == "cancelled"
    with transaction(org) as db:
        assert sweep(db, ORG, "Care Plan Clinic", "CarePlan", now=NOW + timedelta(days=1)) == 0
        assert sweep(db, ORG, "Care Plan Clinic", None) == 0, "an EHR that takes no care plan gets none"



def test_an_ehr_that_takes_no_goal_gets_the_care_plan_alone(org) -> None:
    content = seed(load_templates()["copd"], (), NOW.date()).to_json()
    with transaction(org) as db:
        draft = save_draft(db, ORG, PATIENT, content, template="copd", by="Practitioner/pr-care-manager", now=NOW)
        version = establish(db, ORG, PATIENT, draft.id, by=DOCTOR, time_role=TimeRole.BILLING_PRACTITIONER,
                            on=NOW.date(), now=NOW)
        share_version(db, version, "CarePlan", practice="Care Plan Clinic", goals=False, now=NOW)
    (plan,) = rows(org).values()
    assert plan.resource_type == "CarePlan" and "goal" not in plan.payload
    assert "Measurable treatment goals" in plan.payload["text"]["div"], "the narrative still lists the goals"
