"""The FHIR gateway against Medplum's FHIR router: the sandbox's reading of FHIR must not hide a bug.

The same behaviours as tests/test_patient_record.py and tests/test_consent_writeback.py, over real
HTTP against an independent FHIR R4 engine (conftest.py starts it). Where the two engines could
answer differently, the facts the app derives from Medplum are compared with those it derives from
our sandbox, both holding the unshifted fixtures (anchor month November 2026).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from smart_app.billing.facts_source import coverage_reference
from smart_app.billing.fhir_resources import claim_resource, full_url, minutes_observation, superbill_document
from smart_app.billing.outbox import DeliveryReport, OutgoingResource, deliver, enqueue, outbox_rows
from smart_app.billing.values import Performer
from smart_app.db import transaction
from smart_app.ehr.capabilities import EhrCapabilities, fetch_capabilities
from smart_app.ehr.consent_resource import consent_resource
from smart_app.ehr.consent_writeback import WritebackOutcome, write_consent
from smart_app.ehr.facts import facts_from_record, map_consents
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.fhir_models import check_structure
from smart_app.ehr.record import PatientRecord, fetch_record, record_requests
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.consents import ConsentRecord
from smart_app.paths import data_path
from smart_app.rules.facts import Consent, PatientFacts
from smart_app.rules.loader import default_rule_set
from smart_app.sandbox import SandboxConfig, create_app
from smart_app.statuses import OutboxStatus
from tests.billing.claims import ccm_claim
from tests.databases import sessions_for
from tests.interop.conftest import Medplum
from tests.live_server import serve

MONTH = "2026-11"  # the fixtures' anchor month; neither server here shifts dates
SCALES = default_rule_set().scale_loinc_codes()
USER = "Practitioner/pr-care-manager"
PATIENTS = sorted(p.stem for p in data_path("fixtures").glob("*.json") if p.stem != "organization")
CONSENT_PATIENT = "interop-consent"  # its own patient, so consents written never reach the record comparisons
_counter = iter(range(1_000_000))


# --- helpers --------------------------------------------------------------------------------

def capabilities(fhir_base: str) -> EhrCapabilities:
    async def go() -> EhrCapabilities:
        async with httpx.AsyncClient(timeout=20) as http:
            found, why = await fetch_capabilities(http, fhir_base)
            assert why is None, why
            return found
    return asyncio.run(go())


def read(fhir_base: str, caps: EhrCapabilities, patient_id: str, fhir_user: str | None = USER,
         tz: str = "America/New_York") -> PatientRecord:
    async def go() -> PatientRecord:
        async with httpx.AsyncClient(timeout=20) as http:
            return await fetch_record(FhirClient(http, fhir_base, None), caps, patient_id, MONTH, fhir_user, SCALES,
                                      tz)
    return asyncio.run(go())


def facts(record: PatientRecord) -> PatientFacts:
    return facts_from_record(record, MONTH)


def ids(record: PatientRecord) -> dict[str, list[str]]:
    """The resource ids read per part, sorted: what each engine matched, whatever its order."""
    return {part: sorted(r["id"] for r in resources) for part, resources in record.parts.items()}


@dataclasses.dataclass(frozen=True)
class Reference:
    """Our sandbox EHR, open and unshifted, as the baseline for Medplum's answers."""

    fhir: str
    caps: EhrCapabilities


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Reference]:
    def app(base_url: str):  # noqa: ANN202
        return create_app(SandboxConfig(base_url=base_url, fixtures_dir=data_path("fixtures"), open=True,
                                        shift_dates=False))
    with serve(app) as base:
        yield Reference(f"{base}/fhir", capabilities(f"{base}/fhir"))


@pytest.fixture(scope="module")
def medplum_caps(medplum: Medplum) -> EhrCapabilities:
    return capabilities(medplum.fhir)


# --- capabilities ---------------------------------------------------------------------------

def test_the_gateway_reads_medplums_capability_statement(medplum: Medplum, medplum_caps: EhrCapabilities) -> None:
    caps = medplum_caps
    assert caps.batch and caps.transaction
    for kind in ("Patient", "Condition", "Consent", "Observation", "Encounter", "CarePlan", "CareTeam", "Coverage",
                 "Practitioner"):
        assert caps.can(kind, "read") and caps.can(kind, "search-type"), kind
    assert caps.can("Consent", "create") and "Consent" in caps.conditional_create
    for kind in ("Claim", "Task", "Observation", "DocumentReference"):  # month-end write-back targets
        assert caps.can(kind, "create") and caps.can(kind, "update") and kind in caps.conditional_create, kind
    # Every search parameter the gateway sends is one Medplum declares for that type.
    for query in record_requests("p", MONTH, USER, SCALES).values():
        kind = query.target.split("/")[0]
        assert {name for name, _ in query.params} <= caps.search_params[kind], query
    assert {"identifier", "patient"} <= caps.search_params["Consent"]


def test_every_reference_search_names_the_type() -> None:
    # Medplum's server matches a bare id on `patient` and `subject` only; on Coverage's `beneficiary` it found
    # nothing (issue 15). The gateway never leaves the type out, on any parameter.
    for query in record_requests("p", MONTH, USER, SCALES).values():
        kind = query.target.split("/")[0]
        for name, value in query.params:
            if name in REFERENCE_PARAMETERS.get(kind, ()):
                assert "/" in value, query
    assert record_requests("p", MONTH, USER, SCALES)["coverage"].params == (("patient", "Patient/p"),)


# --- reading a patient-month ----------------------------------------------------------------

# The reference search parameters (by type) of what the gateway reads, from R4's definitions.
REFERENCE_PARAMETERS = {kind: {"patient", "subject", "encounter"} for kind in
                        ("Condition", "Consent", "Observation", "Encounter", "CarePlan", "CareTeam", "Procedure")} | {
    "Coverage": {"patient", "beneficiary", "subscriber", "payor", "policy-holder"},
    "PractitionerRole": {"practitioner", "organization"}}

@pytest.mark.parametrize("patient_id", PATIENTS)
def test_one_batch_reads_the_same_record_as_the_sandbox(medplum: Medplum, medplum_caps: EhrCapabilities,
                                                        sandbox: Reference, patient_id: str) -> None:
    medplum.clear_requests()
    record = read(medplum.fhir, medplum_caps, patient_id)
    assert medplum.requests() == [("POST", "/fhir")]
    # The batch Bundle the gateway sent passed Medplum's validator on the way in; fhir.resources agrees.
    (sent,) = medplum.posted_bundles()
    assert sent["type"] == "batch"
    check_structure(sent)
    assert record.round_trips == 1 and record.unavailable == {}
    assert record.patient["id"] == patient_id
    assert record.user is not None and record.user["id"] == "pr-care-manager"
    baseline = read(sandbox.fhir, sandbox.caps, patient_id)
    assert ids(record) == ids(baseline)
    assert facts(record) == facts(baseline)


@pytest.mark.parametrize("patient_id", PATIENTS)
def test_without_batch_concurrent_reads_agree_with_the_batch(medplum: Medplum, medplum_caps: EhrCapabilities,
                                                             patient_id: str) -> None:
    batched = read(medplum.fhir, medplum_caps, patient_id)
    medplum.clear_requests()
    concurrent = read(medplum.fhir, EhrCapabilities(), patient_id)
    requests = medplum.requests()
    assert len(requests) == len(record_requests(patient_id, MONTH, USER, SCALES))
    assert all(method == "GET" for method, _ in requests)
    assert concurrent.unavailable == {}
    assert ids(concurrent) == ids(batched)
    assert facts(concurrent) == facts(batched)


def test_medplum_understands_the_searches_behind_the_key_facts(medplum: Medplum,
                                                               medplum_caps: EhrCapabilities) -> None:
    # code with a system|code list, date ge/lt: only this month's and last month's rating scales.
    cocm = facts(read(medplum.fhir, medplum_caps, "cocm-depression-anxiety"))
    assert {c.code for c in cocm.conditions} >= {"F33.1", "F41.1"}
    assert {(s.code, s.date.isoformat()[:7]) for s in cocm.rating_scales} >= {("44261-6", MONTH), ("70274-6", MONTH)}
    assert [c.program for c in cocm.consents] == ["cocm"]
    assert any(e.program == "cocm" for e in cocm.episodes)
    # Encounter date ge, the care-program mdm code: the discharge with its moderate MDM.
    tcm = facts(read(medplum.fhir, EhrCapabilities(), "tcm-recent-discharge"))
    (discharge,) = tcm.discharges
    assert discharge.contact_date is not None and discharge.face_to_face_date is not None
    assert discharge.date < discharge.contact_date <= discharge.face_to_face_date
    assert discharge.complexity == "moderate"
    # Coverage by patient=Patient/<id> (a bare id on `beneficiary` finds nothing on Medplum's server).
    record = read(medplum.fhir, medplum_caps, "ccm-two-chronic")
    assert [c["id"] for c in record.get("coverage")] == ["ccm-two-chronic-coverage"]


def test_search_follows_pages_and_keeps_included_resources_out(medplum: Medplum) -> None:
    async def go() -> list[dict]:
        async with httpx.AsyncClient(timeout=20) as http:
            return await FhirClient(http, medplum.fhir, None).search(
                "Condition", [("patient", "complex-ccm-high"), ("_include", "Condition:patient"), ("_count", "4")])
    medplum.clear_requests()
    found = asyncio.run(go())
    assert medplum.requests() == [("GET", "/fhir/Condition")] * 2  # 4 + 2, by the next link
    assert len(found) == 6 and {r["resourceType"] for r in found} == {"Condition"}
    everything = read(medplum.fhir, EhrCapabilities(), "complex-ccm-high").get("conditions")
    assert sorted(r["id"] for r in found) == sorted(r["id"] for r in everything)


@pytest.fixture(scope="module")
def late_in_the_month(medplum: Medplum) -> str:
    """A patient whose PHQ-9 was taken on the evening of 30 November in New York (01:00 UTC on 1 December)."""
    patient_id = "interop-late-month"
    scale = next(e["resource"] for e in json.loads((data_path("fixtures") / "bhi-depression-phq9.json").read_text())
                 ["entry"] if e["resource"]["resourceType"] == "Observation")
    scale = {**scale, "id": f"{patient_id}-phq9", "subject": {"reference": f"Patient/{patient_id}"},
             "effectiveDateTime": "2026-11-30T20:00:00-05:00"}
    scale.pop("encounter", None)
    for resource in ({"resourceType": "Patient", "id": patient_id}, scale):
        httpx.put(f"{medplum.fhir}/{resource['resourceType']}/{resource['id']}", json=resource,
                  timeout=10).raise_for_status()
    return patient_id


# The gateway bounds the month with the organization's offset (lt2026-12-01T00:00:00-05:00).
def test_a_scale_taken_on_the_last_evening_of_the_month_is_read(medplum: Medplum, medplum_caps: EhrCapabilities,
                                                                 late_in_the_month: str) -> None:
    record = read(medplum.fhir, medplum_caps, late_in_the_month)
    assert [s.date.isoformat() for s in facts(record).rating_scales] == ["2026-11-30"]


# --- consent write-back ---------------------------------------------------------------------

def consent_record(method: str = "verbal") -> ConsentRecord:
    return ConsentRecord(
        id=f"interop-consent-{next(_counter)}-{datetime.now(UTC).timestamp()}", organization_id="org-ny",
        patient_id=CONSENT_PATIENT, program="ccm", kind="consent", method=method, explained_availability=True,
        explained_cost_sharing=True, explained_right_to_stop=True, explained_one_practitioner=True,
        obtained_on=date(2026, 11, 3), obtained_by=USER, note="", recorded_at=datetime(2026, 11, 20, 17, tzinfo=UTC),
        withdraws_id=None, writeback_status="pending", writeback_detail="", fhir_id=None)


def consent_of(rec: ConsentRecord) -> dict:
    return consent_resource(rec, patient_ref=f"Patient/{CONSENT_PATIENT}", organization_ref="Organization/org-practice",
                            performer_ref=f"Patient/{CONSENT_PATIENT}")


def write(medplum: Medplum, caps: EhrCapabilities, resource: dict) -> WritebackOutcome:
    async def go() -> WritebackOutcome:
        async with httpx.AsyncClient(timeout=20) as http:
            return await write_consent(FhirClient(http, medplum.fhir, None), caps, resource)
    return asyncio.run(go())


def stored_consents(medplum: Medplum, consent_id: str) -> list[dict]:
    bundle = httpx.get(f"{medplum.fhir}/Consent", params={"identifier": f"urn:smart-app:consent|{consent_id}"},
                       timeout=10).json()
    return [e["resource"] for e in bundle.get("entry") or []]


@pytest.fixture(scope="module", autouse=True)
def consent_patient(medplum: Medplum) -> None:
    patient = {"resourceType": "Patient", "id": CONSENT_PATIENT, "name": [{"family": "Interop", "given": ["Consent"]}]}
    httpx.put(f"{medplum.fhir}/Patient/{CONSENT_PATIENT}", json=patient, timeout=10).raise_for_status()


def test_conditional_create_twice_leaves_one_consent(medplum: Medplum, medplum_caps: EhrCapabilities) -> None:
    rec = consent_record()
    resource = consent_of(rec)
    medplum.clear_requests()
    first = write(medplum, medplum_caps, resource)
    second = write(medplum, medplum_caps, resource)
    assert first.status == "written" and first.fhir_id, first
    assert first.detail == f"Written to the EHR as Consent/{first.fhir_id}."
    assert second == WritebackOutcome("written", f"The EHR already has this consent (Consent/{first.fhir_id}).",
                                      first.fhir_id)
    assert medplum.requests() == [("POST", "/fhir/Consent"), ("POST", "/fhir/Consent")]
    (stored,) = stored_consents(medplum, rec.id)
    assert stored["id"] == first.fhir_id
    # Medplum's validator accepted it on the way in. Read back, the app skips its own Consent (its
    # ledger row is authoritative); the same content from elsewhere counts as CCM consent.
    findings: list[str] = []
    assert map_consents([stored], findings) == []
    foreign = {k: v for k, v in stored.items() if k != "identifier"}
    assert map_consents([foreign], findings) == [Consent("ccm", "active", date(2026, 11, 3), first.fhir_id)]
    assert findings == []


def test_without_conditional_create_search_then_create_writes_once(medplum: Medplum,
                                                                    medplum_caps: EhrCapabilities) -> None:
    caps = dataclasses.replace(medplum_caps, conditional_create=medplum_caps.conditional_create - {"Consent"})
    rec = consent_record(method="written")
    resource = consent_of(rec)
    medplum.clear_requests()
    first = write(medplum, caps, resource)
    second = write(medplum, caps, resource)
    assert first.status == "written" and second.status == "written" and first.fhir_id == second.fhir_id
    assert "already has" in second.detail
    assert medplum.requests() == [("GET", "/fhir/Consent"), ("POST", "/fhir/Consent"), ("GET", "/fhir/Consent")]
    assert len(stored_consents(medplum, rec.id)) == 1


def without_policy_rule() -> dict:
    """A Consent that breaks invariant ppc-1 (policy or policyRule), past the app's own checks, as a bug would."""
    resource = json.loads(json.dumps(consent_of(consent_record())))
    del resource["policyRule"]
    return resource


def test_an_invalid_consent_is_refused_not_retried(medplum: Medplum, medplum_caps: EhrCapabilities) -> None:
    rec_id = without_policy_rule()["identifier"][0]["value"]
    outcome = write(medplum, medplum_caps, without_policy_rule())
    assert outcome.status == "failed" and outcome.fhir_id is None
    assert outcome.detail.startswith("The EHR refused the Consent (HTTP 400): ")
    assert stored_consents(medplum, rec_id) == []


# outcome_text prefers details.text, where Medplum puts the sentence (diagnostics holds FHIRPath).
def test_a_refusal_names_medplums_readable_reason(medplum: Medplum, medplum_caps: EhrCapabilities) -> None:
    outcome = write(medplum, medplum_caps, without_policy_rule())
    assert "Constraint ppc-1 not met" in outcome.detail


# --- claim write-back -----------------------------------------------------------------------
# Claim (and month-end Task / Observation / DocumentReference) write-back tests against Medplum go
# here, added by the lead with the billing write-back: the CapabilityStatement already declares
# create, update and conditional create for Claim, Task, Observation and DocumentReference, and
# transaction Bundles are atomic in this wrapper.


def _month_end_resources(patient_id: str, month: str) -> list[OutgoingResource]:
    """A claim's write-back for a real fixture patient: minutes Observation, Claim pointing at it, superbill."""
    return _claim_resources(patient_id, month, coverage=None)


def _claim_resources(patient_id: str, month: str, coverage: str | None) -> list[OutgoingResource]:
    claim = dataclasses.replace(
        ccm_claim(), organization_id="org-medplum", patient_id=patient_id, month=month, coverage=coverage,
        lines=ccm_claim().lines[:2], billing_practitioner="Practitioner/pr-billing-md",
        supervising_practitioner="Practitioner/pr-billing-md",
        performers=(Performer("Practitioner/pr-nurse", "clinical-staff", 45),))
    observation = minutes_observation(claim, "ccm")
    bill = claim_resource(claim, created=date(2026, 3, 31), observation_refs={"ccm": full_url(observation)})
    document = superbill_document(claim, b"%PDF-1.4 test", created=datetime(2026, 4, 1, tzinfo=UTC))
    out = []
    for resource, purpose in ((observation, "minutes"), (bill, "claim"), (document, "superbill")):
        ident = resource["identifier"][0]
        out.append(OutgoingResource(resource["resourceType"], purpose, ident["system"], ident["value"], resource))
    return out


def _deliver_to_medplum(medplum: Medplum, caps: EhrCapabilities, database_url: str,
                        resources: list[OutgoingResource]) -> DeliveryReport:
    with sessions_for(database_url) as sessions:
        with transaction(sessions) as db:
            save_organizations(db, [Organization(id="org-medplum", name="Medplum", issuer=medplum.fhir,
                                                 client_id="x")])
            enqueue(db, organization_id="org-medplum", claim_id=None, patient_id="ccm-two-chronic",
                    month="2026-03", resources=resources)

        async def go() -> DeliveryReport:
            async with httpx.AsyncClient(timeout=20) as http:
                return await deliver(sessions, FhirClient(http, medplum.fhir, None), caps, "org-medplum")
        report = asyncio.run(go())
        with transaction(sessions) as db:
            failures = [f"{r.resource_type}: {r.last_error}"
                        for r in outbox_rows(db, "org-medplum", status=OutboxStatus.FAILED)]
        assert not failures, failures
        return report


def _matching(medplum: Medplum, resource: OutgoingResource) -> list[dict]:
    found = httpx.get(f"{medplum.fhir}/{resource.resource_type}",
                      params={"identifier": resource.identifier}, timeout=20).json()
    return [e["resource"] for e in found.get("entry", [])]


@pytest.mark.parametrize("transactions", [True, False], ids=["transaction", "one-by-one"])
def test_claim_write_back_to_medplum_happens_exactly_once(medplum: Medplum, medplum_caps: EhrCapabilities,
                                                          database_url: str, transactions: bool) -> None:
    caps = dataclasses.replace(medplum_caps, transaction=transactions)
    # A month of its own per case, so the two cases' identifiers differ.
    resources = _month_end_resources("ccm-two-chronic", "2026-03" if transactions else "2026-02")
    medplum.clear_requests()
    first = _deliver_to_medplum(medplum, caps, database_url, resources)
    assert first.delivered == 3 and first.failed == 0, first
    # Each transaction Bundle sent passed Medplum's validator on the way in; fhir.resources agrees.
    sent = medplum.posted_bundles()
    assert [b["type"] for b in sent] == (["transaction"] if transactions else [])
    for bundle in sent:
        check_structure(bundle)
    again = _deliver_to_medplum(medplum, caps, database_url, resources)
    assert again.delivered == 0
    observation, claim, _ = (_matching(medplum, r) for r in resources)
    assert len(observation) == 1 and len(claim) == 1
    # The Claim's reference to its Observation was resolved to the id Medplum gave it.
    assert claim[0]["supportingInfo"][0]["valueReference"]["reference"] == f"Observation/{observation[0]['id']}"
    assert [(i["productOrService"]["coding"][0]["code"], i["quantity"]["value"]) for i in claim[0]["item"]] == \
        [("99490", 1), ("99439", 2)]


# Every fixture patient's Coverage, as the fixtures hold it.
COVERAGES = {r["beneficiary"]["reference"].removeprefix("Patient/"): f"Coverage/{r['id']}"
             for path in data_path("fixtures").glob("*.json")
             for r in (e["resource"] for e in json.loads(path.read_text()).get("entry") or [])
             if r["resourceType"] == "Coverage"}


def test_each_patients_coverage_is_found_and_put_on_the_claim(medplum: Medplum, medplum_caps: EhrCapabilities,
                                                              database_url: str) -> None:
    assert len(COVERAGES) >= 10
    found = {}
    for patient_id in sorted(COVERAGES):
        for caps in (medplum_caps, EhrCapabilities()):  # in a batch, and as a search of its own
            found[patient_id] = coverage_reference(read(medplum.fhir, caps, patient_id))
            assert found[patient_id] == COVERAGES[patient_id], (patient_id, caps.batch)
    month = "2026-01"  # a month of its own: the other write-back tests use others
    resources = [r for patient_id in sorted(COVERAGES)
                 for r in _claim_resources(patient_id, month, coverage=found[patient_id])]
    report = _deliver_to_medplum(medplum, medplum_caps, database_url, resources)
    assert report.delivered == len(resources) and report.failed == 0, report
    for patient_id, coverage in sorted(COVERAGES.items()):
        (claim,) = _matching(medplum, next(r for r in resources if r.resource_type == "Claim"
                                           and r.payload["patient"]["reference"] == f"Patient/{patient_id}"))
        assert claim["insurance"][0]["coverage"] == {"reference": coverage}
        # The reference resolves on Medplum to the patient's own Coverage.
        held = httpx.get(f"{medplum.fhir}/{coverage}", timeout=10).json()
        assert held["beneficiary"]["reference"] == f"Patient/{patient_id}"
