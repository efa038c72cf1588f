"""A FHIR R4 Consent for a consent (or withdrawal) recorded in the app, validated before it leaves.

Shape (R4 Consent):
- `status` active for a consent, inactive for a withdrawal; `scope` consentscope `treatment`;
  `category` LOINC 59284-0 "Patient Consent" plus the program in the app's care-program code system
  (what `ehr.facts.map_consents` reads back).
- `patient`, `dateTime` (the day consent was given, or the day the patient asked to stop),
  `performer` (the grantor given by the caller, normally the patient, then the practitioner who
  obtained or recorded it), `organization`.
- `policyRule` v3-ActCode OPTIN (ppc-1 wants a policy or a policy rule).
- `provision` permit; a consent's `period.start` is the day it was given, a withdrawal's
  `period.end` the last day it still covers (the end of that month).
- `verification` (verified, with the patient, on the day) for a verbal consent.
- The four elements CMS expects explained: a narrative `text` and an `extension`
  (`CONSENT_ELEMENTS_URL`) holding one valueBoolean sub-extension per element plus the method
  (valueCode verbal | written). A withdrawal carries no elements.
- `identifier` `urn:smart-app:consent|<the app's row id>`, so write-back can be made idempotent.
The R4B and R4 models (`fhir_models`) check structure and cardinality, not invariants, so ppc-1 and ppc-5 are
checked here.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from smart_app.ehr.fhir_models import check_structure
from smart_app.ehr.record import CARE_PROGRAM, LOINC
from smart_app.errors import EhrError
from smart_app.statuses import ConsentKind

if TYPE_CHECKING:
    from smart_app.ledger.consents import ConsentRecord

CONSENT_IDENTIFIER_SYSTEM = "urn:smart-app:consent"
CONSENT_ELEMENTS_URL = "http://example.org/fhir/StructureDefinition/ccm-consent-elements"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PROGRAM_NAMES = {
    "ccm": "Chronic Care Management",
    "pcm": "Principal Care Management",
    "bhi": "Behavioral Health Integration",
    "cocm": "Psychiatric Collaborative Care Model",
    "apcm": "Advanced Primary Care Management",
}
# (sub-extension url, ConsentRecord field, sentence for the narrative)
ELEMENTS = (
    ("availability", "explained_availability", "the availability of the service"),
    ("cost-sharing", "explained_cost_sharing", "that cost sharing (deductible and coinsurance) applies"),
    ("right-to-stop", "explained_right_to_stop", "that the patient may stop at any time, effective the end of "
                                                 "the calendar month"),
    ("one-practitioner", "explained_one_practitioner", "that only one practitioner can bill the service "
                                                       "per month"),
)


def consent_identifier(consent_id: str) -> dict:
    """The business identifier of the app's consent row."""
    return {"system": CONSENT_IDENTIFIER_SYSTEM, "value": consent_id}


def _narrative(record: ConsentRecord, name: str) -> str:
    if record.kind == ConsentKind.WITHDRAWAL:
        last = record.last_covered_day
        body = (f"The patient withdrew consent to {name} on {record.obtained_on.isoformat()} "
                f"({record.method}); it covers services through {last.isoformat() if last else ''}. "
                f"Recorded by {record.obtained_by}.")
        return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escape(body)}</p></div>'
    told = "".join(f"<li>{escape(sentence)}: {'yes' if getattr(record, field) else 'no'}</li>"
                   for _, field, sentence in ELEMENTS)
    head = (f"{record.method.capitalize()} consent to {name} given on {record.obtained_on.isoformat()}, "
            f"obtained by {record.obtained_by}. The practitioner explained:")
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escape(head)}</p><ul>{told}</ul></div>'


def _elements_extension(record: ConsentRecord) -> dict:
    subs: list[dict] = [{"url": url, "valueBoolean": bool(getattr(record, field))} for url, field, _ in ELEMENTS]
    subs.append({"url": "method", "valueCode": record.method})
    return {"url": CONSENT_ELEMENTS_URL, "extension": subs}


def check_invariants(resource: dict) -> None:
    """The Consent invariants fhir.resources does not check; ValueError naming the one broken."""
    if not (resource.get("policy") or resource.get("policyRule")):
        raise ValueError("ppc-1: a Consent needs a policy or a policyRule")
    scopes = {c.get("code") for c in (resource.get("scope") or {}).get("coding") or []
              if c.get("system") == CONSENT_SCOPE}
    if scopes & {"privacy", "research", "adr", "treatment"} and not (resource.get("patient") or {}).get("reference"):
        raise ValueError("ppc-2..5: a privacy, research, adr or treatment Consent needs a patient")


def validate_consent(resource: dict) -> dict:
    """Validate with the R4B and R4 models and the invariants; EhrError (the app's own bug) when invalid."""
    try:
        check_structure(resource)
        check_invariants(resource)
    except ValueError as exc:
        raise EhrError(f"The app built an invalid FHIR Consent ({exc}).",
                       "The consent is kept in the app; tell the app's support team.") from exc
    return resource


def consent_resource(record: ConsentRecord, *, patient_ref: str, organization_ref: str | None,
                     performer_ref: str) -> dict:
    """The FHIR R4 Consent (JSON) for a consent or withdrawal row, validated."""
    name = PROGRAM_NAMES.get(record.program, record.program.upper())
    withdrawal = record.kind == ConsentKind.WITHDRAWAL
    performers = [performer_ref] + ([record.obtained_by] if record.obtained_by != performer_ref else [])
    if withdrawal:
        last = record.last_covered_day
        provision = {"type": "permit", "period": {"end": last.isoformat() if last else record.obtained_on.isoformat()}}
    else:
        provision = {"type": "permit", "period": {"start": record.obtained_on.isoformat()}}
    resource: dict = {
        "resourceType": "Consent",
        "text": {"status": "generated", "div": _narrative(record, name)},
        "identifier": [consent_identifier(record.id)],
        "status": "inactive" if withdrawal else "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment", "display": "Treatment"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            {"coding": [{"system": CARE_PROGRAM, "code": record.program, "display": name}]},
        ],
        "patient": {"reference": patient_ref},
        "dateTime": record.obtained_on.isoformat(),
        "performer": [{"reference": ref} for ref in performers],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN", "display": "opt-in"}],
                       "text": f"Patient opt-in to {name}" + (", withdrawn by the patient." if withdrawal else ".")},
        "provision": provision,
    }
    if organization_ref:
        resource["organization"] = [{"reference": organization_ref}]
    if not withdrawal:
        resource["extension"] = [_elements_extension(record)]
        if record.method == "verbal":
            resource["verification"] = [{"verified": True, "verifiedWith": {"reference": patient_ref},
                                         "verificationDate": record.obtained_on.isoformat()}]
    return validate_consent(resource)
