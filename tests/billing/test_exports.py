"""The month's FHIR export: a valid collection Bundle with each resource once in its current state, the earlier
versions as a history Bundle, NDJSON one resource a line; on both databases.

The end-to-end path (a corrected month over real HTTP, exported by the command line and checked by Medplum's
validator) is tests/interop/test_medplum_exports.py.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.exports import export_bundle, export_ndjson, export_resources, history_bundle
from smart_app.billing.fhir_resources import (
    ResourceInvalid,
    check_bundle,
    claim_resource,
    full_url,
    minutes_observation,
    superbill_document,
)
from smart_app.billing.models import ClaimRow, OutboxRow
from smart_app.billing.outbox import OutgoingResource, enqueue
from smart_app.billing.supersede import retired_identifier, supersede
from smart_app.billing.values import ProposedClaim
from smart_app.db import transaction
from smart_app.ehr.fhir_models import check_structure
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.statuses import OutboxStatus
from tests.billing.claims import ccm_claim

ORG = "org-export"
PATIENT = "ccm-two-chronic"
MONTH = "2026-10"
NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(sessions) as db:
        save_organizations(db, [Organization(id=ORG, name="Export Clinic", issuer="http://127.0.0.1:9/fhir",
                                             client_id="app")])
    return sessions


def month_claim(minutes: int) -> ProposedClaim:
    line = replace(ccm_claim().lines[0], service_date=date(2026, 10, 31), minutes=minutes)
    return replace(ccm_claim(), organization_id=ORG, patient_id=PATIENT, month=MONTH, lines=(line,))


def version_resources(claim: ProposedClaim, version: int) -> list[OutgoingResource]:
    """What approving version `version` of the patient-month's claim queues: minutes, Claim, superbill."""
    observation = minutes_observation(claim, "ccm", version=version)
    bill = claim_resource(claim, created=date(2026, 11, 1), version=version,
                          observation_refs={"ccm": full_url(observation)})
    document = superbill_document(claim, b"%PDF-1.4 test", created=datetime(2026, 11, 1, tzinfo=UTC),
                                  version=version)
    out = []
    for resource, purpose in ((observation, "minutes"), (bill, "claim"), (document, "superbill")):
        ident = resource["identifier"][0]
        out.append(OutgoingResource(resource["resourceType"], purpose, ident["system"], ident["value"], resource))
    return out


def approve_version(db: Session, version: int, minutes: int, at: datetime) -> str:
    """A claim version approved at `at`: its row, its resources queued, the earlier version replaced."""
    db.execute(update(ClaimRow).where(ClaimRow.organization_id == ORG, ClaimRow.status == "approved")
               .values(status="replaced"))
    claim_id, claim = str(uuid.uuid4()), month_claim(minutes)
    db.add(ClaimRow(id=claim_id, organization_id=ORG, patient_id=PATIENT, month=MONTH, version=version,
                    status="approved", content=claim.to_json(), content_hash=f"{version:064d}", created_at=at,
                    review_note="", reviewed_at=at))
    db.flush()
    enqueue(db, organization_id=ORG, claim_id=claim_id, patient_id=PATIENT, month=MONTH,
            resources=version_resources(claim, version), now=at)
    supersede(db, ORG, PATIENT, MONTH, can_update_claim=True, now=at)
    return claim_id


def deliver_all(db: Session, at: datetime) -> None:
    """Mark every pending row delivered, as the outbox would, with the id the EHR gave it."""
    for row in db.query(OutboxRow).filter(OutboxRow.status == OutboxStatus.PENDING):
        row.status, row.updated_at = OutboxStatus.DONE, at
        row.fhir_id = row.payload.get("id") or f"{row.resource_type.lower()}-{uuid.uuid4().hex[:8]}"


def corrected_month(sessions: sessionmaker[Session], *, deliver_retirements: bool = True) -> None:
    """Version 1 delivered; version 2 approved later, retiring what version 1 wrote."""
    with transaction(sessions) as db:
        approve_version(db, 1, 20, NOW)
        deliver_all(db, NOW + timedelta(minutes=1))
    with transaction(sessions) as db:
        approve_version(db, 2, 40, NOW + timedelta(days=1))
        if deliver_retirements:
            deliver_all(db, NOW + timedelta(days=1, minutes=1))


def export(sessions: sessionmaker[Session]) -> tuple[list[dict], list[dict], set[str]]:
    history: list[dict] = []
    patients: set[str] = set()
    with transaction(sessions) as db:
        current = list(export_resources(db, ORG, MONTH, "America/New_York", patients, history))
    return current, history, patients


def status_of(resource: dict) -> tuple[str, str, str]:
    return resource["resourceType"], resource["identifier"][0]["value"].rsplit(":", 1)[-1], resource["status"]


def test_a_corrected_month_exports_each_resource_once_in_its_current_state(sessions) -> None:
    corrected_month(sessions)
    current, _, patients = export(sessions)
    assert patients == {PATIENT}
    assert sorted(status_of(r) for r in current) == [
        ("Claim", "v1", "entered-in-error"), ("Claim", "v2", "active"),
        ("DocumentReference", "v1", "superseded"), ("DocumentReference", "v2", "current"),
        ("Observation", "v1", "entered-in-error"), ("Observation", "v2", "final")]
    # Each carries the EHR's id and its delivery status.
    assert all(r["id"] and r["meta"]["tag"][-1]["code"] == "done" for r in current)
    bundle = export_bundle(current, NOW)
    assert bundle["type"] == "collection" and "total" not in bundle
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls)) == 6 and all(u.startswith("urn:uuid:") for u in urls)
    # The Claim's pointer to its minutes Observation resolves inside the export.
    claim = next(r for r in current if status_of(r) == ("Claim", "v2", "active"))
    assert claim["supportingInfo"][0]["valueReference"]["reference"] in urls
    check_structure(bundle)  # fhir.resources (R4B) and fhirclient (R4)
    check_bundle(bundle)


def test_the_earlier_versions_go_in_a_history_bundle_newest_first(sessions) -> None:
    corrected_month(sessions)
    current, versions, _ = export(sessions)
    history = history_bundle(versions, NOW)
    assert history is not None and history["type"] == "history" and history["total"] == 6
    check_structure(history)
    check_bundle(history)
    retired = {entry_url for entry_url in (e["fullUrl"] for e in history["entry"])}
    assert len(retired) == 3, "the three resources of version 1, each twice"
    # Newest first: the three updates that retired them, then the three creates.
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT"] * 3 + ["POST"] * 3
    for entry in history["entry"]:
        resource, request, response = entry["resource"], entry["request"], entry["response"]
        if request["method"] == "PUT":
            assert request["url"] == f"{resource['resourceType']}/{resource['id']}"
            assert response["status"] == "200 OK" and resource["status"] in ("entered-in-error", "superseded")
        else:
            assert request["url"] == resource["resourceType"] and response["status"] == "201 Created"
            assert resource["status"] in ("active", "final", "current")
        assert response["location"] == f"{resource['resourceType']}/{resource['id']}"
    # The collection holds the newest of each, and no version 2 resource has a history.
    assert retired < {full_url(r) for r in current}


def test_a_retirement_not_yet_delivered_is_the_current_state_and_history_holds_what_the_ehr_took(sessions) -> None:
    corrected_month(sessions, deliver_retirements=False)
    with transaction(sessions) as db:
        db.execute(update(OutboxRow).where(OutboxRow.purpose == "claim", OutboxRow.claim_id.is_not(None),
                                           OutboxRow.status == OutboxStatus.PENDING)
                   .values(status=OutboxStatus.DONE, fhir_id="claim-v2"))
    current, versions, _ = export(sessions)
    retiring = [r for r in current if r["meta"]["tag"][-1]["code"] == "pending"]
    assert sorted(status_of(r) for r in retiring) == [("Claim", "v1", "entered-in-error"),
                                                      ("DocumentReference", "v1", "superseded"),
                                                      ("DocumentReference", "v2", "current"),
                                                      ("Observation", "v1", "entered-in-error"),
                                                      ("Observation", "v2", "final")]
    history = history_bundle(versions, NOW)
    assert history is not None
    assert sorted(status_of(e["resource"]) for e in history["entry"]) == [
        ("Claim", "v1", "active"), ("DocumentReference", "v1", "current"), ("Observation", "v1", "final")]


def test_a_month_without_corrections_has_no_history(sessions) -> None:
    with transaction(sessions) as db:
        approve_version(db, 1, 20, NOW)
    current, versions, _ = export(sessions)
    assert len(current) == 3 and versions == [] and history_bundle(versions) is None


def test_ndjson_is_one_resource_a_line_the_same_as_the_bundle(sessions) -> None:
    corrected_month(sessions)
    current, _, _ = export(sessions)
    lines = list(export_ndjson(current))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert [json.loads(line) for line in lines] == current


def test_the_bundle_invariants_are_enforced() -> None:
    resource = {"resourceType": "Patient", "id": "a"}
    with pytest.raises(ValueError, match="bdl-1"):
        check_bundle({"resourceType": "Bundle", "type": "collection", "total": 1,
                      "entry": [{"fullUrl": "urn:uuid:1", "resource": resource}]})
    with pytest.raises(ValueError, match="bdl-7"):
        check_bundle({"resourceType": "Bundle", "type": "collection",
                      "entry": [{"fullUrl": "urn:uuid:1", "resource": resource}] * 2})
    with pytest.raises(ValueError, match="bdl-3"):
        check_bundle({"resourceType": "Bundle", "type": "history",
                      "entry": [{"fullUrl": "urn:uuid:1", "resource": resource, "response": {"status": "200"}}]})
    with pytest.raises(ValueError, match="bdl-4"):
        check_bundle({"resourceType": "Bundle", "type": "history",
                      "entry": [{"fullUrl": "urn:uuid:1", "resource": resource,
                                 "request": {"method": "PUT", "url": "Patient/a"}}]})
    with pytest.raises(ValueError, match="bdl-2"):
        check_bundle({"resourceType": "Bundle", "type": "collection",
                      "entry": [{"fullUrl": "urn:uuid:1", "resource": resource, "search": {"mode": "match"}}]})
    # Two versions of one resource may share a fullUrl; a history Bundle lists versions freely.
    check_bundle({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {**resource, "meta": {"versionId": str(n)}}} for n in (1, 2)]})
    with pytest.raises(ResourceInvalid, match="bdl-7"):
        export_bundle([{**resource, "identifier": [{"system": "urn:smart-app:x", "value": "1"}]}] * 2)


def test_a_retirement_names_the_resource_it_updates() -> None:
    assert retired_identifier("urn:smart-app:claim|org:p:2026-10:v1:entered-in-error") == \
        "urn:smart-app:claim|org:p:2026-10:v1"
    assert retired_identifier("urn:smart-app:superbill|org:p:2026-10:v1:superseded") == \
        "urn:smart-app:superbill|org:p:2026-10:v1"
    with pytest.raises(ValueError, match="not the identifier of a retirement"):
        retired_identifier("urn:smart-app:claim|org:p:2026-10:v1")
