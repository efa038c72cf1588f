"""What the app writes is checked against FHIR R4 (fhirclient's models) as well as R4B (fhir.resources').

EHRs read R4. An element that exists only in R4B passes fhir.resources' validation, so without the R4 check the
app would send it and the EHR would refuse the write (or worse, drop the element).
"""

from __future__ import annotations

import pytest
from fhir.resources.R4B.task import Task

from smart_app.billing import fhir_resources as fr
from smart_app.billing.fhir_resources import ResourceInvalid
from smart_app.ehr.consent_resource import validate_consent
from smart_app.ehr.fhir_models import check_structure
from smart_app.errors import EhrError
from tests.billing.claims import entry

# CodeableReference is an R4B data type: an extension may carry it in R4B, not in R4.
R4B_ONLY = {"url": "http://example.org/fhir/StructureDefinition/note", "valueCodeableReference": {
    "concept": {"text": "a data type EHRs on R4 do not know"}}}
# R4 lets an extension carry a Meta; R4B dropped that.
R4_ONLY = {"url": "http://example.org/fhir/StructureDefinition/note", "valueMeta": {"versionId": "1"}}

CONSENT = {
    "resourceType": "Consent", "status": "active",
    "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
    "patient": {"reference": "Patient/pat-1"}, "policyRule": {"text": "Patient opt-in to Chronic Care Management."},
}


def test_a_task_with_an_r4b_only_element_is_refused_before_it_leaves() -> None:
    drifted = {**fr.activity_task(entry(), month="2026-03"), "extension": [R4B_ONLY]}
    Task.model_validate(drifted)  # fhir.resources' R4B model alone lets it through
    with pytest.raises(ResourceInvalid, match=r"invalid FHIR Task \(not valid FHIR R4 .*valueCodeableReference") \
            as caught:
        fr.validate_resource(drifted)
    assert "Nothing was sent to the EHR" in caught.value.hint


def test_a_consent_with_an_r4b_only_element_is_refused_and_kept_in_the_app() -> None:
    assert validate_consent(dict(CONSENT)) == CONSENT
    with pytest.raises(EhrError, match=r"invalid FHIR Consent \(not valid FHIR R4 .*valueCodeableReference") as caught:
        validate_consent({**CONSENT, "extension": [R4B_ONLY]})
    assert "kept in the app" in caught.value.hint


def test_an_element_r4b_dropped_is_refused_by_the_r4b_check() -> None:
    with pytest.raises(ValueError, match=r"R4B: extension\.0\.valueMeta: Extra inputs are not permitted"):
        check_structure({**CONSENT, "extension": [R4_ONLY]})


def test_a_type_the_app_does_not_write_is_named() -> None:
    with pytest.raises(ValueError, match="'Patient' is not a resource type the app writes"):
        check_structure({"resourceType": "Patient"})
