"""The month-end FHIR builders: each resource validates with the R4B model and carries the agreed fields."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.task import Task

from smart_app.billing import fhir_resources as fr
from smart_app.billing.fhir_resources import (
    CPT,
    HCPCS,
    NO_COVERAGE_DISPLAY,
    PLACE_OF_SERVICE,
    ResourceInvalid,
    business_identifier,
)
from smart_app.billing.values import ProposedClaim
from smart_app.ehr.record import CARE_PROGRAM
from smart_app.errors import SmartAppError
from tests.billing.claims import CARE_MANAGER, DOCTOR, ICD10, NURSE, SUPERVISOR, ccm_claim, entry

CREATED = date(2026, 4, 1)
OBS_REFS = {"ccm": "Observation/obs-ccm", "apcm": "urn:uuid:0b8a4c8e-9d52-5a4e-8f1e-2f3b1f0a9c11"}


def build_claim(claim=None, **kwargs) -> dict:
    return fr.claim_resource(claim or ccm_claim(), created=CREATED, observation_refs=OBS_REFS, **kwargs)


def codes(concept: dict) -> list[tuple[str, str]]:
    return [(c["system"], c["code"]) for c in concept["coding"]]


def team_role(member: dict) -> str:
    return member["role"]["coding"][0]["code"]


# ---------------------------------------------------------------- identifiers


def test_business_identifier_is_deterministic_and_escapes_parts():
    assert business_identifier("claim", "org-1", "pat-1", "2026-03", "v1") == {
        "system": "urn:smart-app:claim", "value": "org-1:pat-1:2026-03:v1"}
    assert business_identifier("claim", "org-1", "pat-1", "2026-03", "v1") == \
        business_identifier("claim", "org-1", "pat-1", "2026-03", "v1")
    tricky = business_identifier("claim", "org:1", "a|b")["value"]
    assert "|" not in tricky and tricky.count(":") == 1
    with pytest.raises(ValueError):
        business_identifier("claim")


def test_identifiers_are_the_same_for_the_same_input_and_differ_by_month_and_version():
    first, again = build_claim(), build_claim()
    assert first["identifier"] == again["identifier"] == [
        {"system": "urn:smart-app:claim", "value": "org-1:pat-1:2026-03:v1"}]
    assert first == again  # pure: byte-for-byte the same resource
    april = build_claim(ccm_claim(month="2026-04"))
    version_two = build_claim(version=2)
    values = {r["identifier"][0]["value"] for r in (first, april, version_two)}
    assert len(values) == 3
    assert fr.minutes_observation(ccm_claim(), "ccm")["identifier"] == \
        fr.minutes_observation(ccm_claim(), "ccm")["identifier"]
    assert fr.minutes_observation(ccm_claim(), "ccm")["identifier"] != \
        fr.minutes_observation(ccm_claim(month="2026-04"), "ccm")["identifier"]
    assert fr.minutes_observation(ccm_claim(), "ccm")["identifier"] != \
        fr.minutes_observation(ccm_claim(), "apcm")["identifier"]
    assert fr.activity_task(entry(), month="2026-03")["identifier"] == [
        {"system": "urn:smart-app:activity", "value": "org-1:e-1"}]
    assert fr.activity_task(entry(id="e-2"), month="2026-03")["identifier"] != \
        fr.activity_task(entry(), month="2026-03")["identifier"]


def test_every_resource_uses_an_app_identifier_system():
    claim = ccm_claim()
    pdf = b"%PDF-1.3 fake"
    resources = [build_claim(), fr.minutes_observation(claim, "ccm"), fr.activity_task(entry(), month="2026-03"),
                 fr.superbill_document(claim, pdf, created=datetime(2026, 4, 1, tzinfo=UTC)),
                 fr.charge_item(claim, claim.lines[0]), fr.activity_communication(entry(), month="2026-03"),
                 fr.minutes_document(claim)]
    systems = [r["identifier"][0]["system"] for r in resources]
    assert all(s.startswith("urn:smart-app:") for s in systems)
    assert len(set(systems)) == len(systems)  # one kind per resource purpose


# ---------------------------------------------------------------- Claim


def test_claim_validates_and_carries_the_header():
    resource = build_claim()
    Claim.model_validate(resource)
    assert resource["status"] == "active" and resource["use"] == "claim"
    assert codes(resource["type"]) == [("http://terminology.hl7.org/CodeSystem/claim-type", "professional")]
    assert codes(resource["priority"]) == [("http://terminology.hl7.org/CodeSystem/processpriority", "normal")]
    assert resource["patient"] == {"reference": "Patient/pat-1", "display": "Ada Lovelace"}
    assert resource["created"] == "2026-04-01"
    assert resource["provider"]["reference"] == DOCTOR
    assert resource["billablePeriod"] == {"start": "2026-03-01", "end": "2026-03-31"}
    assert resource["insurance"] == [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov-1"}}]
    assert "related" not in resource and "total" not in resource


def test_claim_items_codes_units_dates_place_of_service_and_diagnoses():
    resource = build_claim()
    items = resource["item"]
    assert [i["sequence"] for i in items] == [1, 2, 3]
    assert codes(items[0]["productOrService"]) == [(CPT, "99490")]
    assert codes(items[1]["productOrService"]) == [(CPT, "99439")]
    assert codes(items[2]["productOrService"]) == [(HCPCS, "G0556")]
    assert [i["quantity"] for i in items] == [{"value": 1}, {"value": 2}, {"value": 1}]
    assert all(i["servicedDate"] == "2026-03-31" for i in items)
    assert all(codes(i["locationCodeableConcept"]) == [(PLACE_OF_SERVICE, "11")] for i in items)
    assert resource["diagnosis"] == [
        {"sequence": 1, "diagnosisCodeableConcept": {"coding": [
            {"system": ICD10, "code": "E11.9", "display": "Type 2 diabetes mellitus without complications"}]}},
        {"sequence": 2, "diagnosisCodeableConcept": {"coding": [
            {"system": ICD10, "code": "I10", "display": "Essential (primary) hypertension"}]}},
    ]
    assert all(i["diagnosisSequence"] == [1, 2] for i in items)
    # The descriptor is a paraphrase: text, never a Coding.display.
    assert "display" not in items[0]["productOrService"]["coding"][0]
    assert items[0]["productOrService"]["text"].startswith("CCM")


def test_claim_care_team_roles_and_item_pointers():
    resource = build_claim()
    team = {(m["provider"]["reference"], team_role(m)): m["sequence"] for m in resource["careTeam"]}
    assert team == {(DOCTOR, "primary"): 1, (SUPERVISOR, "supervisor"): 2, (NURSE, "assist"): 3,
                    (CARE_MANAGER, "assist"): 4}
    assert all(m["role"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/claimcareteamrole"
               for m in resource["careTeam"])
    primary = resource["careTeam"][0]
    assert primary["responsible"] is True
    items = resource["item"]
    assert items[0]["careTeamSequence"] == [1, 2, 3]  # 99490: staff only
    assert items[1]["careTeamSequence"] == [1, 2, 3, 4]  # 99439: staff and care manager
    assert items[2]["careTeamSequence"] == [1, 2]


def test_claim_supporting_info_points_at_the_observations():
    resource = build_claim()
    info = resource["supportingInfo"]
    assert [(s["sequence"], s["valueReference"]["reference"]) for s in info] == [
        (1, "Observation/obs-ccm"), (2, OBS_REFS["apcm"])]
    assert all(codes(s["category"]) == [("http://terminology.hl7.org/CodeSystem/claiminformationcategory", "info")]
               for s in info)
    assert [i["informationSequence"] for i in resource["item"]] == [[1], [1], [2]]
    without = fr.claim_resource(ccm_claim(), created=CREATED, observation_refs={})
    assert "supportingInfo" not in without and all("informationSequence" not in i for i in without["item"])


def test_claim_without_coverage_uses_a_display_only_reference():
    resource = build_claim(ccm_claim(coverage=None))
    Claim.model_validate(resource)
    assert resource["insurance"] == [{"sequence": 1, "focal": True, "coverage": {"display": NO_COVERAGE_DISPLAY}}]
    assert NO_COVERAGE_DISPLAY == "Medicare Part B (no Coverage resource on file)"


def test_claim_caps_diagnosis_pointers_at_four():
    from smart_app.billing.values import Diagnosis

    many = tuple(Diagnosis(f"E1{n}.9", ICD10) for n in range(6))
    resource = build_claim(ccm_claim(diagnoses=many))
    assert len(resource["diagnosis"]) == 6
    assert all(i["diagnosisSequence"] == [1, 2, 3, 4] for i in resource["item"])


def test_replacement_claim_relates_to_the_prior_and_the_old_one_is_entered_in_error():
    old = build_claim()
    new = build_claim(replaces="Claim/claim-1", version=2)
    Claim.model_validate(new)
    assert new["identifier"] != old["identifier"]
    assert new["identifier"][0]["value"].endswith(":v2")
    related = new["related"]
    assert related[0]["claim"] == {"reference": "Claim/claim-1"}
    assert codes(related[0]["relationship"]) == [
        ("http://terminology.hl7.org/CodeSystem/related-claim-relationship", "prior")]
    retired = fr.retired_copy(old, "entered-in-error", "claim-1")
    Claim.model_validate(retired)
    assert retired["status"] == "entered-in-error"
    assert retired["identifier"] == old["identifier"] and retired["id"] == "claim-1"
    assert old["status"] == "active" and "id" not in old  # the input is not changed
    with pytest.raises(ResourceInvalid, match="needs the id"):
        fr.retired_copy(old, "entered-in-error", "")


def test_claim_refuses_what_cannot_be_a_claim():
    with pytest.raises(ResourceInvalid, match="nothing is billable"):
        build_claim(ccm_claim(lines=()))
    with pytest.raises(ResourceInvalid, match="billing practitioner"):
        build_claim(ccm_claim(billing_practitioner=""))
    with pytest.raises(ResourceInvalid, match="Claim") as caught:
        build_claim(ccm_claim(billing_practitioner="Patient/pat-1"))
    assert isinstance(caught.value, SmartAppError)
    with pytest.raises(ResourceInvalid):
        fr.retired_copy({"resourceType": "Observation"}, "entered-in-error", "obs-1")


def test_validation_failure_names_the_resource_and_the_problem():
    with pytest.raises(ResourceInvalid) as caught:
        fr.validate_resource({"resourceType": "Observation", "status": "final"})
    assert "Observation" in caught.value.message and "code" in caught.value.message
    assert caught.value.hint


def test_claim_survives_a_json_round_trip_of_the_proposed_claim():
    claim = ccm_claim()
    assert build_claim(ProposedClaim.from_json(claim.to_json())) == build_claim(claim)


# ---------------------------------------------------------------- Observation


def test_minutes_observation():
    resource = fr.minutes_observation(ccm_claim(), "ccm")
    Observation.model_validate(resource)
    assert resource["status"] == "final"
    assert codes(resource["category"][0]) == [(CARE_PROGRAM, "care-management-time")]
    assert resource["code"]["text"] == "Care management minutes, ccm"
    assert codes(resource["code"]) == [(CARE_PROGRAM, "ccm-minutes")]
    assert resource["subject"] == {"reference": "Patient/pat-1"}
    assert resource["effectivePeriod"] == {"start": "2026-03-01", "end": "2026-03-31"}
    # The decision's documented total (65), not only the billed lines' minutes.
    assert resource["valueQuantity"] == {"value": 65, "unit": "min", "system": "http://unitsofmeasure.org",
                                         "code": "min"}
    assert [p["reference"] for p in resource["performer"]] == [NURSE, CARE_MANAGER]
    components = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in resource["component"]}
    assert components == {"minutes-by-clinical-staff": 45, "minutes-by-care-manager": 20}
    assert all(c["valueQuantity"]["code"] == "min" for c in resource["component"])


def test_minutes_observation_falls_back_to_the_lines_and_knows_february():
    claim = ccm_claim(decision={}, month="2028-02")
    resource = fr.minutes_observation(claim, "ccm")
    assert resource["valueQuantity"]["value"] == 65  # 20 + 45 from the lines
    assert resource["effectivePeriod"] == {"start": "2028-02-01", "end": "2028-02-29"}


# ---------------------------------------------------------------- Task and Communication


def test_activity_task():
    resource = fr.activity_task(entry(), month="2026-03")
    Task.model_validate(resource)
    assert resource["status"] == "completed" and resource["intent"] == "order"
    assert resource["executionPeriod"] == {"start": "2026-03-04T14:05:00+00:00", "end": "2026-03-04T14:25:00+00:00"}
    assert resource["owner"] == {"reference": NURSE}
    assert resource["for"] == {"reference": "Patient/pat-1"}
    assert resource["code"]["text"] == "Patient or caregiver call"
    assert codes(resource["code"]) == [(CARE_PROGRAM, "patient-call")]
    assert resource["authoredOn"] == "2026-03-04T14:30:00+00:00"
    assert resource["groupIdentifier"]["value"] == "org-1:pat-1:2026-03"


def test_activity_task_refuses_voids_other_months_and_naive_times():
    with pytest.raises(ResourceInvalid, match="void"):
        fr.activity_task(entry(kind="void"), month="2026-03")
    with pytest.raises(ResourceInvalid, match="2026-04"):
        fr.activity_task(entry(), month="2026-04")
    with pytest.raises(ResourceInvalid, match="timezone"):
        fr.activity_task(entry(start=datetime(2026, 3, 4, 14, 5)), month="2026-03")


def test_activity_communication():
    resource = fr.activity_communication(entry(), month="2026-03")
    Communication.model_validate(resource)
    assert resource["status"] == "completed"
    assert resource["subject"] == {"reference": "Patient/pat-1"}
    assert resource["sender"] == {"reference": NURSE}
    assert resource["sent"] == "2026-03-04T14:25:00+00:00"
    text = resource["payload"][0]["contentString"]
    assert "Patient or caregiver call" in text and "20 minutes" in text
    assert resource["identifier"][0]["system"] == "urn:smart-app:activity-note"


# ---------------------------------------------------------------- DocumentReference and ChargeItem


def test_superbill_document():
    pdf = b"%PDF-1.4\nsuperbill bytes"
    resource = fr.superbill_document(ccm_claim(), pdf, created=datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    DocumentReference.model_validate(resource)
    assert resource["status"] == "current"
    assert resource["type"]["text"] == "Care management superbill"
    assert resource["subject"] == {"reference": "Patient/pat-1"}
    assert resource["author"] == [{"reference": DOCTOR}]
    assert resource["date"] == "2026-04-01T09:00:00+00:00"
    assert resource["category"]
    attachment = resource["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]) == pdf
    assert attachment["size"] == len(pdf)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    assert attachment["title"] == "Care management superbill, March 2026"
    with pytest.raises(ResourceInvalid, match="not a PDF"):
        fr.superbill_document(ccm_claim(), b"<html>", created=datetime(2026, 4, 1, tzinfo=UTC))


def test_minutes_document_is_a_plain_text_note():
    resource = fr.minutes_document(ccm_claim())
    DocumentReference.model_validate(resource)
    attachment = resource["content"][0]["attachment"]
    assert attachment["contentType"].startswith("text/plain")
    text = base64.b64decode(attachment["data"]).decode()
    assert "Chronic Care Management (ccm): 65 minutes" in text
    assert "99439 x2" in text
    assert resource["context"]["period"] == {"start": "2026-03-01", "end": "2026-03-31"}


def test_charge_item_per_line():
    claim = ccm_claim()
    resource = fr.charge_item(claim, claim.lines[1])
    ChargeItem.model_validate(resource)
    assert resource["status"] == "billable"
    assert codes(resource["code"]) == [(CPT, "99439")]
    assert resource["quantity"] == {"value": 2}
    assert resource["occurrencePeriod"] == {"start": "2026-03-01", "end": "2026-03-31"}
    actors = [p["actor"]["reference"] for p in resource["performer"]]
    assert actors == [DOCTOR, SUPERVISOR, NURSE, CARE_MANAGER]
    assert resource["identifier"][0]["value"] == "org-1:pat-1:2026-03:99439:v1"
    g_code = fr.charge_item(claim, claim.lines[2])
    assert codes(g_code["code"]) == [(HCPCS, "G0556")]
    with pytest.raises(ResourceInvalid):
        fr.charge_item(ccm_claim(patient_id="pat-2", lines=claim.lines[:1]), claim.lines[2])


# ---------------------------------------------------------------- Bundle


def test_transaction_bundle_with_conditional_creates_and_linked_references():
    claim = ccm_claim()
    observations = {p: fr.minutes_observation(claim, p) for p in ("ccm", "apcm")}
    refs = {p: fr.full_url(o) for p, o in observations.items()}
    claim_json = fr.claim_resource(claim, created=CREATED, observation_refs=refs)
    task = fr.activity_task(entry(), month="2026-03")
    bundle = fr.claim_bundle([*observations.values(), claim_json, task])
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    assert all(u.startswith("urn:uuid:") for u in full_urls) and len(set(full_urls)) == 4
    for item in bundle["entry"]:
        ident = item["resource"]["identifier"][0]
        assert item["request"] == {"method": "POST", "url": item["resource"]["resourceType"],
                                   "ifNoneExist": f"identifier={ident['system']}|{ident['value']}"}
    # The Claim's supportingInfo resolves inside the Bundle.
    claim_refs = {s["valueReference"]["reference"] for s in claim_json["supportingInfo"]}
    assert claim_refs <= set(full_urls)
    assert fr.claim_bundle([*observations.values(), claim_json, task]) == bundle  # deterministic


def test_bundle_refuses_duplicates_and_resources_without_an_app_identifier():
    obs = fr.minutes_observation(ccm_claim(), "ccm")
    with pytest.raises(ResourceInvalid, match="bdl-7"):
        fr.claim_bundle([obs, obs])
    with pytest.raises(ValueError, match="identifier"):
        fr.claim_bundle([{"resourceType": "Observation", "status": "final", "code": {"text": "x"}}])
    with pytest.raises(ResourceInvalid):
        fr.claim_bundle([])


def test_bundle_sends_the_retired_claim_as_an_update():
    retired = fr.retired_copy(build_claim(), "entered-in-error", "claim-1")
    replacement = build_claim(replaces="Claim/claim-1", version=2)
    bundle = fr.claim_bundle([retired, replacement])
    Bundle.model_validate(bundle)
    assert bundle["entry"][0]["request"] == {"method": "PUT", "url": "Claim/claim-1"}
    assert bundle["entry"][1]["request"]["ifNoneExist"].endswith(":v2")
