"""FHIR R4 resources for month-end write-back, built as plain dicts and validated before they leave.

Every builder is pure (no I/O, no clock): the same inputs give the same resource, byte for byte.
Each resource carries one business identifier from `business_identifier(kind, *parts)`
(system `urn:smart-app:<kind>`, value the percent-encoded parts joined by ":"), so the outbox can
deduplicate and the EHR write can be a conditional create (`identifier=<system>|<value>`).

| builder | resource | identifier kind and parts |
| --- | --- | --- |
| `claim_resource` | Claim per patient-month (a replacement is a new Claim) | claim: org, patient, month, v<version> |
| `entered_in_error` | the old Claim, status entered-in-error | unchanged |
| `minutes_observation` | Observation of documented minutes per program-month | minutes: org, patient, month, program |
| `activity_task` | Task per logged activity | activity: org, entry id |
| `superbill_document` | DocumentReference carrying the superbill PDF | superbill: org, patient, month, v<version> |
| `charge_item` | ChargeItem per claim line (no Claim create) | charge: org, patient, month, code, v<version> |
| `activity_communication` | Communication per activity (EHRs without Task create) | activity-note: org, entry id |
| `minutes_document` | DocumentReference, text/plain minutes note | minutes-note: org, patient, month, v<version> |
| `scale_resource` | a rating scale: Observation, QuestionnaireResponse, Communication or note | scale: org, scale id |
| `claim_bundle` | transaction Bundle with conditional creates | (none) |

fhir.resources (R4B) and fhirclient (R4) check structure and cardinality, not invariants or reference targets, so
the invariants these resources could break (obs-7, att-1, per-1, bdl-1/-2/-3/-4/-7) and the Claim's internal
sequence pointers are checked here too. Failures raise `ResourceInvalid`: always the app's own bug.

CPT descriptors in the rule set are paraphrases (CPT text is AMA copyright), so they go in
`CodeableConcept.text`, never in `Coding.display`.
"""

from __future__ import annotations

import base64
import copy
import csv
import hashlib
import html
import io
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from urllib.parse import quote

from smart_app.billing.values import ClaimLine, Diagnosis, Performer, ProposedClaim
from smart_app.ehr.consent_resource import PROGRAM_NAMES
from smart_app.ehr.fhir_models import check_structure
from smart_app.ehr.names import MBI_SYSTEM, NPI_SYSTEM
from smart_app.ehr.record import CARE_PROGRAM, LOINC
from smart_app.errors import SmartAppError
from smart_app.ledger.months import Month
from smart_app.ledger.scales import ScaleRecord, safety_answer
from smart_app.ledger.values import Entry
from smart_app.rules.questionnaires import Questionnaire
from smart_app.statuses import EntryKind

IDENTIFIER_PREFIX = "urn:smart-app:"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
PLACE_OF_SERVICE = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PROCESS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
CARE_TEAM_ROLE = "http://terminology.hl7.org/CodeSystem/claimcareteamrole"
INFO_CATEGORY = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
RELATED_CLAIM = "http://terminology.hl7.org/CodeSystem/related-claim-relationship"
US_CORE_DOC_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
COMMUNICATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"
# Identifier kinds of a rating scale: the scale as the plan routes it (at once or at month end, the same), and
# the safety alert's fallback where the EHR refused that.
SCALE_KIND = "scale"
SCALE_ALERT_KIND = "scale-alert"
NO_COVERAGE_DISPLAY = "Medicare Part B (no Coverage resource on file)"
# The app's own codes (in its CARE_PROGRAM code system).
TIME_CATEGORY = "care-management-time"
SUPERBILL_CODE = "care-management-superbill"
# LOINC 53242-4 "Charge ticket or encounter form": the source document billing is done from,
# which is what a superbill is. LOINC 11506-3 "Progress note" for the minutes note.
SUPERBILL_LOINC = ("53242-4", "Charge ticket or encounter form")
PROGRESS_NOTE_LOINC = ("11506-3", "Progress note")
# Common CMS place-of-service codes, for displays; any other code is sent without a display.
PLACE_OF_SERVICE_NAMES = {
    "02": "Telehealth Provided Other than in Patient's Home",
    "10": "Telehealth Provided in Patient's Home",
    "11": "Office",
    "12": "Home",
    "19": "Off Campus-Outpatient Hospital",
    "22": "On Campus-Outpatient Hospital",
    "31": "Skilled Nursing Facility",
    "32": "Nursing Facility",
    "33": "Custodial Care Facility",
    "50": "Federally Qualified Health Center",
    "72": "Rural Health Clinic",
}
# Ledger role -> claim care-team role.
TEAM_ROLE_OF = {"clinical-staff": "assist", "care-manager": "assist", "billing-practitioner": "primary",
                "supervising-practitioner": "supervisor", "psychiatric-consultant": "other"}
TEAM_ROLE_DISPLAY = {"primary": "Primary provider", "assist": "Assisting Provider",
                     "supervisor": "Supervising Provider", "other": "Other"}
# CMS-1500 and 837P carry at most four diagnosis pointers per line.
MAX_DIAGNOSIS_POINTERS = 4
_PROVIDER_TYPES = ("Practitioner", "PractitionerRole", "Organization")
_BUILT = ("Claim", "Observation", "Task", "DocumentReference", "ChargeItem", "Communication", "Bundle",
          "QuestionnaireResponse")


class ResourceInvalid(SmartAppError):
    """The app built a FHIR resource that does not validate: a bug in the app, never the user's doing."""

    title = "The app built an invalid FHIR resource"
    status_code = 500


# ---------------------------------------------------------------- identifiers and small helpers


def business_identifier(kind: str, *parts: object) -> dict:
    """The deterministic business identifier `urn:smart-app:<kind>` | parts joined by ":".

    Each part is percent-encoded (only letters, digits and `-._~` stay as they are), so no part can
    smuggle in the ":" separator or the "|" that splits a token search.
    """
    if not kind or not parts:
        raise ValueError("a business identifier needs a kind and at least one part")
    values = [quote(str(part), safe="-._~") for part in parts]
    if any(not value for value in values):
        raise ValueError(f"a business identifier part is empty: {parts!r}")
    return {"system": f"{IDENTIFIER_PREFIX}{kind}", "value": ":".join(values)}


def identifier_token(identifier: dict) -> str:
    """`system|value`, the token search form (and the outbox's identifier column)."""
    return f"{identifier['system']}|{identifier['value']}"


def business_token(resource: dict) -> str:
    """The token of the resource's `urn:smart-app:` identifier; ValueError when it has none."""
    found = resource.get("identifier")
    for identifier in [found] if isinstance(found, dict) else found or []:
        if isinstance(identifier, dict) and str(identifier.get("system", "")).startswith(IDENTIFIER_PREFIX):
            return identifier_token(identifier)
    raise ValueError(f"the {resource.get('resourceType', 'resource')} carries no {IDENTIFIER_PREFIX} identifier")


def full_url(resource: dict) -> str:
    """The `urn:uuid` the resource gets in a transaction Bundle: a UUIDv5 of its business identifier.

    Deterministic, so a Claim can point at an Observation of the same Bundle before the Bundle is built.
    """
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, business_token(resource))}"


def code_system(code: str) -> str:
    """CPT for the five-digit codes, HCPCS Level II for the letter-led ones (G0556, G2214...)."""
    return HCPCS if code[:1].isalpha() else CPT


def month_period(month: str) -> dict:
    """The calendar month as a FHIR Period of dates, first day to last day."""
    service = Month.parse(month)
    return {"start": service.first_day.isoformat(), "end": service.last_day.isoformat()}


def program_name(program: str) -> str:
    """A person's name for a program key ("ccm" -> "Chronic Care Management")."""
    if program == "complex_ccm":
        return "Complex Chronic Care Management"
    if program == "tcm":
        return "Transitional Care Management"
    return PROGRAM_NAMES.get(program, program.upper())


def program_minutes(claim: ProposedClaim, program: str) -> tuple[int, dict[str, int]]:
    """Documented minutes of a program and their split by role.

    The decision's `minutes_total` (every counted minute, billed or not) when the claim carries it,
    else the sum of the program's billed lines.
    """
    for item in (claim.decision or {}).get("programs") or []:
        if isinstance(item, dict) and item.get("program") == program and "minutes_total" in item:
            return int(item["minutes_total"]), {str(k): int(v) for k, v in (item.get("minutes_by_role") or {}).items()}
    total, by_role = 0, dict[str, int]()
    for line in claim.lines:
        if line.program == program:
            total += line.minutes
            for role, mins in line.minutes_by_role.items():
                by_role[role] = by_role.get(role, 0) + mins
    return total, by_role


def claim_programs(claim: ProposedClaim) -> list[str]:
    """The programs of the claim's lines, in line order, each once."""
    return list(dict.fromkeys(line.program for line in claim.lines))


def _reference(value: str, rtype: str) -> str:
    if "/" in value or value.startswith("urn:"):
        return value
    return f"{rtype}/{value}"


def _patient(claim_or_entry: ProposedClaim | Entry) -> dict:
    return {"reference": _reference(claim_or_entry.patient_id, "Patient")}


def _claim_patient(claim: ProposedClaim) -> dict:
    """The Claim's patient, with name as display and the Medicare Beneficiary Identifier where the EHR has it."""
    patient = _patient(claim)
    if claim.patient_name:
        patient["display"] = claim.patient_name
    if claim.patient_mbi:
        patient["identifier"] = {"system": MBI_SYSTEM, "value": claim.patient_mbi}
    return patient


def _coding(system: str, code: str, display: str = "") -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, display: str = "", text: str = "") -> dict:
    concept: dict = {"coding": [_coding(system, code, display)]}
    if text:
        concept["text"] = text
    return concept


def _service_concept(line: ClaimLine) -> dict:
    return _concept(code_system(line.code), line.code, text=line.descriptor)


def _place_of_service(code: str) -> dict:
    return _concept(PLACE_OF_SERVICE, code, PLACE_OF_SERVICE_NAMES.get(code, ""))


def _diagnosis_concept(diagnosis: Diagnosis) -> dict:
    return _concept(diagnosis.system, diagnosis.code, diagnosis.display)


def _instant(value: datetime, what: str, resource: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ResourceInvalid(f"The app built an invalid FHIR {resource}: {what} has no timezone.",
                              "Pass timezone-aware datetimes to the billing builders.")
    return value.isoformat()


def _invalid(resource: str, problem: str) -> ResourceInvalid:
    return ResourceInvalid(f"The app built an invalid FHIR {resource} ({problem}).",
                           "Nothing was sent to the EHR; tell the app's support team.")


def _attachment(content_type: str, data: bytes, title: str, creation: str | None = None) -> dict:
    attachment = {
        "contentType": content_type,
        "data": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        # FHIR: "the calculated hash of the data using SHA-1, represented using base64".
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),  # SHA-1 because FHIR says so
        "title": title,
    }
    if creation:
        attachment["creation"] = creation
    return attachment


# ---------------------------------------------------------------- validation


def _check_period(resource: str, period: dict | None) -> None:
    if period and period.get("start") and period.get("end") and str(period["start"]) > str(period["end"]):
        raise ValueError(f"per-1: {resource} period starts after it ends")


def _check_claim(resource: dict) -> None:
    provider = resource.get("provider", {}).get("reference", "")
    if provider.split("/", 1)[0] not in _PROVIDER_TYPES:
        raise ValueError(f"provider {provider!r} is not a Practitioner, PractitionerRole or Organization")
    sequences = {}
    for part in ("careTeam", "diagnosis", "supportingInfo", "item", "insurance"):
        numbers = [entry["sequence"] for entry in resource.get(part) or []]
        if len(numbers) != len(set(numbers)):
            raise ValueError(f"{part} sequences repeat")
        sequences[part] = set(numbers)
    for member in resource.get("careTeam") or []:
        if member["provider"].get("reference", "").split("/", 1)[0] not in _PROVIDER_TYPES:
            raise ValueError(f"careTeam provider {member['provider']!r} is not a practitioner or organization")
    pointers = (("careTeamSequence", "careTeam"), ("diagnosisSequence", "diagnosis"),
                ("informationSequence", "supportingInfo"))
    for item in resource.get("item") or []:
        for field, part in pointers:
            missing = set(item.get(field) or []) - sequences[part]
            if missing:
                raise ValueError(f"item {item['sequence']} {field} {sorted(missing)} points at no {part}")
    if sum(1 for ins in resource.get("insurance") or [] if ins.get("focal")) != 1:
        raise ValueError("exactly one insurance must be focal")
    _check_period("Claim.billablePeriod", resource.get("billablePeriod"))


def _check_observation(resource: dict) -> None:
    codes = {(c.get("system"), c.get("code")) for c in resource["code"].get("coding") or []}
    for component in resource.get("component") or []:
        if codes & {(c.get("system"), c.get("code")) for c in component["code"].get("coding") or []}:
            raise ValueError("obs-7: a component has the Observation's own code")
    _check_period("Observation.effectivePeriod", resource.get("effectivePeriod"))


def _check_attachments(resource: dict) -> None:
    for content in resource.get("content") or []:
        attachment = content.get("attachment") or {}
        if attachment.get("data") and not attachment.get("contentType"):
            raise ValueError("att-1: an attachment with data needs a contentType")
    _check_period("DocumentReference.context.period", (resource.get("context") or {}).get("period"))


def check_bundle(resource: dict) -> None:
    """The Bundle invariants the app's Bundles could break (bdl-1, -2, -3, -4, -7); ValueError naming the first.

    Pure and cheap, unlike the structure check, so an export of thousands of resources runs it too.
    """
    kind = resource.get("type")
    entries = resource.get("entry") or []
    if "total" in resource and kind not in ("searchset", "history"):
        raise ValueError(f"bdl-1: a {kind} Bundle carries no total (only search and history Bundles do)")
    if kind != "searchset" and any(entry.get("search") for entry in entries):
        raise ValueError(f"bdl-2: a {kind} Bundle's entries carry no search")
    needs_request = kind in ("batch", "transaction", "history")
    if any(bool(entry.get("request")) != needs_request for entry in entries):
        raise ValueError(f"bdl-3: every entry of a {kind} Bundle {'needs' if needs_request else 'carries no'} "
                         "request")
    needs_response = kind in ("batch-response", "transaction-response", "history")
    if any(bool(entry.get("response")) != needs_response for entry in entries):
        raise ValueError(f"bdl-4: every entry of a {kind} Bundle {'needs' if needs_response else 'carries no'} "
                         "response")
    if kind != "history":
        # The same fullUrl twice only as two versions of one resource.
        seen = [(entry["fullUrl"], ((entry.get("resource") or {}).get("meta") or {}).get("versionId"))
                for entry in entries if entry.get("fullUrl")]
        if len(seen) != len(set(seen)):
            raise ValueError("bdl-7: fullUrls repeat (one resource twice, or two sharing a business identifier)")


_INVARIANTS = {
    "Claim": _check_claim, "Observation": _check_observation, "DocumentReference": _check_attachments,
    "Bundle": check_bundle,
    "Task": lambda r: _check_period("Task.executionPeriod", r.get("executionPeriod")),
    "ChargeItem": lambda r: _check_period("ChargeItem.occurrencePeriod", r.get("occurrencePeriod")),
}


def validate_resource(resource: dict) -> dict:
    """Validate with the R4B and R4 models (`ehr.fhir_models`) and the checks above; ResourceInvalid if not."""
    rtype = resource.get("resourceType")
    if rtype not in _BUILT:
        raise _invalid(str(rtype), "not a resource type the billing room builds")
    try:
        check_structure(resource)
        check = _INVARIANTS.get(str(rtype))
        if check:
            check(resource)
    except (ValueError, KeyError, TypeError) as exc:
        raise _invalid(str(rtype), str(exc)) from exc
    return resource


# ---------------------------------------------------------------- Claim


def _person_name(claim: ProposedClaim, reference: str) -> str:
    known = next((p for p in claim.performers if p.reference == reference and (p.name or p.npi)), None)
    return ", ".join(part for part in (known.name, known.credentials) if part) if known else ""


def _provider(claim: ProposedClaim, reference: str) -> dict:
    """A Reference to a practitioner with their name and credentials as display and their NPI as identifier."""
    provider: dict = {"reference": reference}
    name = _person_name(claim, reference)
    if name:
        provider["display"] = name
    npi = next((p.npi for p in claim.performers if p.reference == reference and p.npi), "")
    if npi:
        provider["identifier"] = {"system": NPI_SYSTEM, "value": npi}
    return provider


def _care_team(claim: ProposedClaim) -> tuple[list[dict], dict[str, list[int]]]:
    """careTeam entries and, per ledger role, the sequences of the members of that role."""
    members: list[dict] = []
    seen: set[tuple[str, str]] = set()
    by_role: dict[str, list[int]] = {}

    def add(reference: str, team_role: str, ledger_role: str | None = None) -> None:
        if not reference:
            return
        key = (reference, team_role)
        if key not in seen:
            seen.add(key)
            member: dict[str, object] = {"sequence": len(members) + 1, "provider": _provider(claim, reference),
                      "role": _concept(CARE_TEAM_ROLE, team_role, TEAM_ROLE_DISPLAY[team_role])}
            if team_role == "primary":
                member["responsible"] = True
            members.append(member)
        if ledger_role:
            sequence = next(m["sequence"] for m in members
                            if m["provider"]["reference"] == reference and m["role"]["coding"][0]["code"] == team_role)
            by_role.setdefault(ledger_role, []).append(sequence)

    add(claim.billing_practitioner, "primary", "billing-practitioner")
    add(claim.supervising_practitioner, "supervisor")
    for performer in claim.performers:
        known = next((m["sequence"] for m in members if m["provider"]["reference"] == performer.reference), None)
        if known is not None:  # already on the team (billing or supervising practitioner): no second entry
            by_role.setdefault(performer.role, []).append(known)
            continue
        team_role = TEAM_ROLE_OF.get(performer.role, "other")
        if team_role == "primary":  # a second billing practitioner's time: list as other
            team_role = "other"
        add(performer.reference, team_role, performer.role)
    return members, by_role


def claim_resource(claim: ProposedClaim, *, created: date, observation_refs: dict[str, str],
                   replaces: str | None = None, version: int = 1, enterer: dict[str, str] | None = None,
                   superbill_ref: str | None = None) -> dict:
    """The Claim (professional, use claim) for one patient-month, validated.

    - `observation_refs`: program -> reference of its minutes Observation ("Observation/<id>" or the
      Bundle's "urn:uuid:..."), sent as supportingInfo (category `info`) and pointed at by the lines.
    - `superbill_ref`: the reference of the superbill DocumentReference (its itemized time log), sent as
      supportingInfo (category `attachment`), so an auditor goes from the Claim to the minutes behind it.
    - `replaces`: the reference of the Claim this one replaces; adds `related` with relationship
      `prior`. The replacement is a new resource with its own identifier (the value ends `v<version>`);
      mark the old one with `entered_in_error`.
    - Claim.insurance is 1..*: when no Coverage is on file (`claim.coverage` is None), the insurance
      is a Reference carrying only display "Medicare Part B (no Coverage resource on file)", so the
      biller sees the gap instead of a made-up Coverage.
    - careTeam: the billing practitioner (primary, responsible), the supervising practitioner
      (supervisor), clinical staff and care managers (assist), others (other). Each item points at
      the billing practitioner, the supervisor and the members whose role has minutes on that line.
    - Diagnoses in the given order; each item points at the first four (the CMS-1500 limit).
    - No charges or totals: the national rate is an estimate, never the practice's charge.
    - `enterer`: who approved the claim (a Practitioner reference with display, or display alone for a biller
      the EHR knows only as a Person, since Claim.enterer may reference only a Practitioner or PractitionerRole).
    """
    if not claim.lines:
        raise _invalid("Claim", f"nothing is billable for {claim.patient_id} in {claim.month}")
    if not claim.billing_practitioner:
        raise _invalid("Claim", "no billing practitioner (Claim.provider is required)")
    if version < 1:
        raise _invalid("Claim", f"version {version} is below 1")
    care_team, team_by_role = _care_team(claim)
    diagnoses = [{"sequence": n, "diagnosisCodeableConcept": _diagnosis_concept(d)}
                 for n, d in enumerate(claim.diagnoses, start=1)]
    supporting: list[dict] = []
    info_by_program: dict[str, list[int]] = {}
    for program in claim_programs(claim):
        ref = observation_refs.get(program)
        if ref:
            supporting.append({
                "sequence": len(supporting) + 1,
                "category": _concept(INFO_CATEGORY, "info", "Information"),
                "code": {"coding": [_coding(CARE_PROGRAM, f"{program}-minutes")],
                         "text": f"Care management minutes, {program}"},
                "valueReference": {"reference": ref},
            })
            info_by_program.setdefault(program, []).append(len(supporting))
    if superbill_ref:
        supporting.append({
            "sequence": len(supporting) + 1,
            "category": _concept(INFO_CATEGORY, "attachment", "Attachment"),
            "code": {"coding": [_coding(CARE_PROGRAM, "superbill")],
                     "text": "Superbill with the itemized time log"},
            "valueReference": {"reference": superbill_ref},
        })
    fixed_team = [1] + ([m["sequence"] for m in care_team if m["role"]["coding"][0]["code"] == "supervisor"])
    items = []
    for n, line in enumerate(claim.lines, start=1):
        team = list(fixed_team)
        for role, mins in line.minutes_by_role.items():
            if mins > 0:
                team.extend(team_by_role.get(role, []))
        item = {
            "sequence": n,
            "careTeamSequence": sorted(set(team)),
            "productOrService": _service_concept(line),
            "servicedDate": line.service_date.isoformat(),
            "locationCodeableConcept": _place_of_service(claim.place_of_service),
            "quantity": {"value": line.units},
        }
        # The line's own program's diagnoses (TCM's included), at most four; an unassigned diagnosis serves all.
        own = [n for n, d in enumerate(claim.diagnoses, start=1) if not d.programs or line.program in d.programs]
        if own:
            item["diagnosisSequence"] = own[:MAX_DIAGNOSIS_POINTERS]
        if info_by_program.get(line.program):
            item["informationSequence"] = info_by_program[line.program]
        items.append(item)
    coverage = ({"reference": _reference(claim.coverage, "Coverage")} if claim.coverage
                else {"display": NO_COVERAGE_DISPLAY})
    resource: dict = {
        "resourceType": "Claim",
        "identifier": [business_identifier("claim", claim.organization_id, claim.patient_id, claim.month,
                                           f"v{version}")],
        "status": "active",
        "type": _concept(CLAIM_TYPE, "professional", "Professional"),
        "use": "claim",
        "patient": _claim_patient(claim),
        "billablePeriod": month_period(claim.month),
        "created": created.isoformat(),
        "provider": _provider(claim, claim.billing_practitioner),
        "priority": _concept(PROCESS_PRIORITY, "normal", "Normal"),
        "careTeam": care_team,
        "insurance": [{"sequence": 1, "focal": True, "coverage": coverage}],
        "item": items,
    }
    if enterer:
        resource["enterer"] = dict(enterer)
    if replaces:
        resource["related"] = [{"claim": {"reference": replaces},
                                "relationship": _concept(RELATED_CLAIM, "prior", "Prior Claim")}]
    if supporting:
        resource["supportingInfo"] = supporting
    if diagnoses:
        resource["diagnosis"] = diagnoses
    return validate_resource(resource)


def retired_copy(resource: dict, status: str, fhir_id: str) -> dict:
    """A copy of a delivered resource with its EHR id and a retiring status (entered-in-error, superseded),
    to update it with once a corrected claim replaced it; validated."""
    if not fhir_id:
        raise _invalid(str(resource.get("resourceType")), "a retired copy needs the id the EHR gave the resource")
    old = copy.deepcopy(resource)
    old["id"], old["status"] = fhir_id, status
    return validate_resource(old)


# ---------------------------------------------------------------- Observation


def minutes_observation(claim: ProposedClaim, program: str, *, version: int = 1) -> dict:
    """The Observation of a program-month's documented minutes (UCUM `min`), with one component per role.

    Versioned like the Claim it supports: a corrected claim brings its own Observation.

    performer: the people with minutes on the claim (all of `claim.performers` when none has minutes).
    """
    total, by_role = program_minutes(claim, program)
    name = program_name(program)
    people = [p for p in claim.performers if p.minutes > 0] or list(claim.performers)
    resource: dict = {
        "resourceType": "Observation",
        "identifier": [business_identifier("minutes", claim.organization_id, claim.patient_id, claim.month, program,
                                           f"v{version}")],
        "status": "final",
        "category": [{"coding": [_coding(CARE_PROGRAM, TIME_CATEGORY, "Care management time")],
                      "text": "Care management time"}],
        "code": {"coding": [_coding(CARE_PROGRAM, f"{program}-minutes", f"{name} minutes")],
                 "text": f"Care management minutes, {program}"},
        "subject": _patient(claim),
        "effectivePeriod": month_period(claim.month),
        "valueQuantity": _minutes(total),
    }
    if people:
        resource["performer"] = [_performer_reference(p) for p in dict((p.reference, p) for p in people).values()]
    components = [{"code": {"coding": [_coding(CARE_PROGRAM, f"minutes-by-{role}")], "text": f"Minutes by {role}"},
                   "valueQuantity": _minutes(mins)} for role, mins in sorted(by_role.items()) if mins > 0]
    if components:
        resource["component"] = components
    return validate_resource(resource)


def scale_summary(scale: ScaleRecord, questionnaire: Questionnaire | None) -> str:
    """The scale in one paragraph of plain text: total, severity band, each item's answer, the safety alert."""
    text = f"{scale.scale} on {scale.taken_on.isoformat()}: total score {scale.score}"
    if questionnaire is not None and scale.items:
        text += f" ({questionnaire.band(scale.score)})."
        answers = [f"{questionnaire.item_number(code)}. {_item_text(questionnaire, code)}: "
                   f"{questionnaire.answer(value).text} ({value})" for code, value in scale.items]
        text += " Answers: " + "; ".join(answers) + "."
    else:
        text += " (total only; no item answers recorded)."
    alert = safety_answer(scale, questionnaire)
    if questionnaire is not None and questionnaire.safety_item and alert is not None:
        number = questionnaire.item_number(questionnaire.safety_item)
        text += (f" SAFETY ALERT: {scale.scale} item {number} positive ({questionnaire.answer(alert).text}); follow "
                 "the practice's suicide-risk protocol and assess the patient today.")
    text += f" Recorded in the care-management app by {scale.recorded_by}."
    if scale.note:
        text += f" Note: {scale.note}"
    return text


def _item_text(questionnaire: Questionnaire, code: str) -> str:
    return next(item.text for item in questionnaire.items if item.loinc == code)


def _answer_concept(questionnaire: Questionnaire, value: int) -> dict:
    answer = questionnaire.answer(value)
    return {"coding": [_coding(LOINC, answer.loinc, answer.text)], "text": f"{answer.text} ({value})"}


def _scale_identifier(scale: ScaleRecord, kind: str) -> dict:
    return business_identifier(kind, scale.organization_id, scale.id)


def scale_observation(scale: ScaleRecord, title: str, questionnaire: Questionnaire | None = None, *,
                      kind: str = SCALE_KIND) -> dict:
    """The Observation of a rating scale recorded in the app: its total score (LOINC total-score code) on the
    date it was given, category survey, one component per item answered (LOINC item code, LOINC answer), the
    severity band as interpretation text; identified per recorded scale so it is written once."""
    resource: dict = {
        "resourceType": "Observation",
        "identifier": [_scale_identifier(scale, kind)],
        "status": "final",
        "category": [{"coding": [_coding(OBSERVATION_CATEGORY, "survey", "Survey")], "text": "Survey"}],
        "code": {"coding": [_coding(LOINC, scale.loinc, title)], "text": f"{scale.scale} total score"},
        "subject": {"reference": _reference(scale.patient_id, "Patient")},
        "effectiveDateTime": scale.taken_on.isoformat(),
        "issued": _instant(scale.recorded_at, "scale.recorded_at", "Observation"),
        "performer": [{"reference": scale.recorded_by}],
        "valueInteger": scale.score,
    }
    if questionnaire is not None and scale.items:
        resource["interpretation"] = [{"text": f"{questionnaire.band(scale.score)} ({scale.scale})"}]
        resource["component"] = [{"code": {"coding": [_coding(LOINC, code)], "text": _item_text(questionnaire, code)},
                                  "valueCodeableConcept": _answer_concept(questionnaire, value)}
                                 for code, value in scale.items]
    notes = []
    alert = safety_answer(scale, questionnaire)
    if questionnaire is not None and questionnaire.safety_item and alert is not None:
        notes.append({"text": f"{scale.scale} item {questionnaire.item_number(questionnaire.safety_item)} positive "
                              f"({questionnaire.answer(alert).text})."})
    if scale.note:
        notes.append({"text": scale.note})
    if notes:
        resource["note"] = notes
    return validate_resource(resource)


def scale_questionnaire_response(scale: ScaleRecord, title: str, questionnaire: Questionnaire | None = None, *,
                                 kind: str = SCALE_KIND) -> dict:
    """A completed QuestionnaireResponse of a rating scale: one item per question (LOINC code as linkId, the
    LOINC answer) and the total score; a total-only scale has the total alone."""
    items: list[dict] = []
    if questionnaire is not None and scale.items:
        items += [{"linkId": code, "text": _item_text(questionnaire, code),
                   "answer": [{"valueCoding": _coding(LOINC, questionnaire.answer(value).loinc,
                                                      questionnaire.answer(value).text)}]}
                  for code, value in scale.items]
    items.append({"linkId": scale.loinc, "text": f"{title} total score",
                  "answer": [{"valueInteger": scale.score}]})
    resource: dict = {
        "resourceType": "QuestionnaireResponse",
        # QuestionnaireResponse.identifier is a single Identifier (0..1) in R4.
        "identifier": _scale_identifier(scale, kind),
        "status": "completed",
        "subject": {"reference": _reference(scale.patient_id, "Patient")},
        "authored": _instant(scale.recorded_at, "scale.recorded_at", "QuestionnaireResponse"),
        "author": {"reference": scale.recorded_by},
        "item": items,
        "text": {"status": "generated", "div": _xhtml(scale_summary(scale, questionnaire))},
    }
    return validate_resource(resource)


def _xhtml(text: str) -> str:
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{html.escape(text)}</p></div>'


def scale_communication(scale: ScaleRecord, title: str, questionnaire: Questionnaire | None = None, *,
                        kind: str = SCALE_KIND) -> dict:
    """A Communication to the care team carrying the scale as text (EHRs that take only notes and messages); a
    safety alert is category alert, priority urgent, its topic "PHQ-9 item 9 positive"."""
    alert = safety_answer(scale, questionnaire)
    urgent = questionnaire is not None and questionnaire.safety_item is not None and alert is not None
    topic = (f"{scale.scale} item {questionnaire.item_number(questionnaire.safety_item or '')} positive"
             if urgent and questionnaire is not None else f"{title}: total score {scale.score}")
    resource: dict = {
        "resourceType": "Communication",
        "identifier": [_scale_identifier(scale, kind)],
        "status": "completed",
        "category": [{"coding": [_coding(COMMUNICATION_CATEGORY, "alert" if urgent else "notification")]}],
        "priority": "urgent" if urgent else "routine",
        "subject": {"reference": _reference(scale.patient_id, "Patient")},
        "topic": {"text": topic},
        "sent": _instant(scale.recorded_at, "scale.recorded_at", "Communication"),
        "sender": {"reference": scale.recorded_by},
        "payload": [{"contentString": scale_summary(scale, questionnaire)}],
    }
    return validate_resource(resource)


def scale_document(scale: ScaleRecord, title: str, questionnaire: Questionnaire | None = None, *,
                   kind: str = SCALE_KIND) -> dict:
    """A DocumentReference note (text/plain) of the scale: its total, band, answers and any safety alert."""
    when = _instant(scale.recorded_at, "scale.recorded_at", "DocumentReference")
    code = questionnaire.panel_loinc if questionnaire is not None else scale.loinc
    resource: dict = {
        "resourceType": "DocumentReference",
        "identifier": [_scale_identifier(scale, kind)],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [_coding(LOINC, code, title)], "text": title},
        "category": [{"coding": [_coding(US_CORE_DOC_CATEGORY, "clinical-note", "Clinical Note")]}],
        "subject": {"reference": _reference(scale.patient_id, "Patient")},
        "date": when,
        "author": [{"reference": scale.recorded_by}],
        "description": f"{scale.scale} of {scale.taken_on.isoformat()}",
        "content": [{"attachment": _attachment("text/plain; charset=utf-8",
                                               scale_summary(scale, questionnaire).encode("utf-8"),
                                               f"{scale.scale} of {scale.taken_on.isoformat()}", when)}],
    }
    return validate_resource(resource)


# The scale's builder per write-back type (`plan.CHOICES["scale"]`).
SCALE_BUILDERS = {"Observation": scale_observation, "QuestionnaireResponse": scale_questionnaire_response,
                  "Communication": scale_communication, "DocumentReference": scale_document}


def scale_resource(resource_type: str, scale: ScaleRecord, title: str, questionnaire: Questionnaire | None = None,
                   *, kind: str = SCALE_KIND) -> dict:
    """The scale as a `resource_type` (Observation, QuestionnaireResponse, Communication or DocumentReference)."""
    return SCALE_BUILDERS[resource_type](scale, title, questionnaire, kind=kind)


def _minutes(value: int) -> dict:
    return {"value": value, "unit": "min", "system": UCUM, "code": "min"}


def _performer_reference(performer: Performer) -> dict:
    ref = {"reference": performer.reference}
    if performer.name:
        ref["display"] = performer.name
    return ref


# ---------------------------------------------------------------- Task and Communication


def _activity_label(code: str) -> str:
    from smart_app.ledger.vocabulary import default_vocabulary  # reads a TOML file once per process

    try:
        activity = default_vocabulary().get(code)
    except SmartAppError:
        return code
    return activity.label if activity else code


def _check_entry(entry: Entry, month: str, resource: str) -> None:
    if entry.kind == EntryKind.VOID:
        raise _invalid(resource, f"entry {entry.id} is a void, not an activity")
    if entry.month != month:
        raise _invalid(resource, f"entry {entry.id} belongs to {entry.month}, not {month}")


def activity_task(entry: Entry, *, month: str) -> dict:
    """A completed Task for one logged activity (the ledger entry), grouped by patient-month.

    groupIdentifier is `urn:smart-app:activity-month` | org:patient:month, so a month's Tasks can be
    found together; `month` must be the entry's own month.
    """
    _check_entry(entry, month, "Task")
    label = _activity_label(entry.activity)
    resource: dict = {
        "resourceType": "Task",
        "identifier": [business_identifier("activity", entry.organization_id, entry.id)],
        "groupIdentifier": business_identifier("activity-month", entry.organization_id, entry.patient_id, month),
        "status": "completed",
        "intent": "order",
        "code": {"coding": [_coding(CARE_PROGRAM, entry.activity, label if label != entry.activity else "")],
                 "text": label},
        "description": f"{label}: {entry.minutes} minutes of {program_name(entry.program)} ({entry.role})",
        "for": {"reference": _reference(entry.patient_id, "Patient")},
        "executionPeriod": {"start": _instant(entry.start, "entry.start", "Task"),
                            "end": _instant(entry.end, "entry.end", "Task")},
        "authoredOn": _instant(entry.recorded_at, "entry.recorded_at", "Task"),
        "owner": {"reference": entry.performer},
        "performerType": [{"text": entry.role}],
        "reasonCode": _concept(CARE_PROGRAM, entry.program, program_name(entry.program)),
    }
    if entry.note:
        resource["note"] = [{"text": entry.note}]
    return validate_resource(resource)


def activity_communication(entry: Entry, *, month: str) -> dict:
    """A completed Communication describing one activity, for EHRs that refuse Task create."""
    _check_entry(entry, month, "Communication")
    label = _activity_label(entry.activity)
    start, end = entry.start, entry.end
    text = (f"{label} for {program_name(entry.program)} ({entry.program}): {entry.minutes} minutes, "
            f"{_instant(start, 'entry.start', 'Communication')} to {_instant(end, 'entry.end', 'Communication')}, "
            f"by {entry.performer} ({entry.role}).")
    if entry.note:
        text += f" Note: {entry.note}"
    resource = {
        "resourceType": "Communication",
        "identifier": [business_identifier("activity-note", entry.organization_id, entry.id)],
        "status": "completed",
        "category": [{"coding": [_coding(CARE_PROGRAM, TIME_CATEGORY, "Care management time")],
                      "text": "Care management activity"}],
        "subject": {"reference": _reference(entry.patient_id, "Patient")},
        "topic": {"text": label},
        "sent": _instant(end, "entry.end", "Communication"),
        "sender": {"reference": entry.performer},
        "payload": [{"contentString": text}],
    }
    return validate_resource(resource)


# ---------------------------------------------------------------- DocumentReference and ChargeItem


def superbill_document(claim: ProposedClaim, pdf: bytes, *, created: datetime, version: int = 1,
                       replaces: str | None = None) -> dict:
    """A DocumentReference carrying the superbill PDF (inline, base64, with size and SHA-1 hash).

    type LOINC 53242-4 "Charge ticket or encounter form" (text "Care management superbill");
    `version` follows the claim's, so a replacement claim's superbill is a new document, which names the one
    it replaces (`replaces`, "DocumentReference/<id>") in relatesTo.
    """
    if not pdf.startswith(b"%PDF"):
        raise _invalid("DocumentReference", "the superbill is not a PDF")
    when = _instant(created, "created", "DocumentReference")
    title = f"Care management superbill, {Month.parse(claim.month).label}"
    resource: dict = {
        "resourceType": "DocumentReference",
        "identifier": [business_identifier("superbill", claim.organization_id, claim.patient_id, claim.month,
                                           f"v{version}")],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [_coding(LOINC, *SUPERBILL_LOINC)], "text": "Care management superbill"},
        "category": [{"coding": [_coding(CARE_PROGRAM, SUPERBILL_CODE, "Care management superbill")],
                      "text": "Billing"}],
        "subject": _patient(claim),
        "date": when,
        "description": title,
        "content": [{"attachment": _attachment("application/pdf", pdf, title, when)}],
        "context": {"period": month_period(claim.month)},
    }
    if claim.time_log:
        log_title = f"Itemized care management time log, {Month.parse(claim.month).label}"
        resource["content"].append({"attachment": _attachment("text/csv; charset=utf-8",
                                                              time_log_csv(claim).encode("utf-8"), log_title, when)})
    if claim.billing_practitioner:
        resource["author"] = [{"reference": claim.billing_practitioner}]
    if replaces:
        resource["relatesTo"] = [{"code": "replaces", "target": {"reference": replaces}}]
    return validate_resource(resource)


TIME_LOG_COLUMNS = ("date", "start", "end", "minutes", "program", "activity", "person", "person_reference", "role",
                    "note", "counts_toward", "not_counted", "why_not_counted")


def time_log_csv(claim: ProposedClaim) -> str:
    """The claim's itemized time log as CSV (RFC 4180): one row per entry, with the codes its minutes count
    toward; a cell a spreadsheet would run as a formula is prefixed with "'"."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(TIME_LOG_COLUMNS)
    for item in claim.time_log:
        row = (item.date, item.start, item.end, item.minutes, item.program, item.activity,
               item.performer_name, item.performer, item.role, item.note,
               ";".join(f"{code}:{mins}" for code, mins in item.counted), item.not_counted, item.why_not)
        writer.writerow(["'" + cell if isinstance(cell, str) and cell.startswith(("=", "+", "-", "@", "\t", "\r"))
                         else cell for cell in row])
    return out.getvalue()


def minutes_summary(claim: ProposedClaim) -> str:
    """The plain-text minutes note: per program, total and by role, then the codes."""
    lines = [f"Care management minutes, {Month.parse(claim.month).label}"]
    for program in claim_programs(claim):
        total, by_role = program_minutes(claim, program)
        roles = ", ".join(f"{role} {mins}" for role, mins in sorted(by_role.items()) if mins)
        lines.append(f"{program_name(program)} ({program}): {total} minutes" + (f" ({roles})" if roles else ""))
    codes = ", ".join(f"{line.code} x{line.units}" for line in claim.lines)
    if codes:
        lines.append(f"Codes proposed: {codes}")
    return "\n".join(lines) + "\n"


def minutes_document(claim: ProposedClaim, *, created: datetime | None = None, version: int = 1) -> dict:
    """A DocumentReference with a text/plain minutes note, for EHRs that refuse the minutes Observation.

    type LOINC 11506-3 "Progress note", category US Core clinical-note (what EHRs accept for notes).
    """
    text = minutes_summary(claim).encode("utf-8")
    title = f"Care management minutes, {Month.parse(claim.month).label}"
    resource: dict = {
        "resourceType": "DocumentReference",
        "identifier": [business_identifier("minutes-note", claim.organization_id, claim.patient_id, claim.month,
                                           f"v{version}")],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [_coding(LOINC, *PROGRESS_NOTE_LOINC)], "text": "Care management minutes"},
        "category": [{"coding": [_coding(US_CORE_DOC_CATEGORY, "clinical-note", "Clinical Note")]}],
        "subject": _patient(claim),
        "description": title,
        "content": [{"attachment": _attachment("text/plain; charset=utf-8", text, title)}],
        "context": {"period": month_period(claim.month)},
    }
    if created is not None:
        resource["date"] = _instant(created, "created", "DocumentReference")
    if claim.billing_practitioner:
        resource["author"] = [{"reference": claim.billing_practitioner}]
    return validate_resource(resource)


def charge_item(claim: ProposedClaim, line: ClaimLine, *, version: int = 1) -> dict:
    """A billable ChargeItem for one claim line, for EHRs that refuse Claim create.

    performer: the billing practitioner, the supervising practitioner and the people whose role has
    minutes on the line, each with name, credentials and NPI; reason: the line's diagnoses.
    """
    if line not in claim.lines:
        raise _invalid("ChargeItem", f"line {line.code} is not on the claim")
    performers: list[dict] = []

    def add(reference: str, function: str) -> None:
        if reference and all(p["actor"]["reference"] != reference for p in performers):
            performers.append({"function": {"text": function}, "actor": _provider(claim, reference)})

    add(claim.billing_practitioner, "billing practitioner")
    add(claim.supervising_practitioner, "supervising practitioner")
    roles = {role for role, mins in line.minutes_by_role.items() if mins > 0}
    for performer in claim.performers:
        if performer.role in roles:
            add(performer.reference, performer.role)
    resource: dict = {
        "resourceType": "ChargeItem",
        "identifier": [business_identifier("charge", claim.organization_id, claim.patient_id, claim.month,
                                           line.code, f"v{version}")],
        "status": "billable",
        "code": _service_concept(line),
        "subject": _patient(claim),
        "occurrencePeriod": month_period(claim.month),
        "quantity": {"value": line.units},
    }
    if performers:
        resource["performer"] = performers
    # The line's own program's diagnoses (an unassigned one serves every line).
    reasons = [_diagnosis_concept(d) for d in claim.diagnoses if not d.programs or line.program in d.programs]
    if reasons:
        resource["reason"] = reasons
    return validate_resource(resource)


# ---------------------------------------------------------------- Bundle


def claim_bundle(resources: Iterable[dict]) -> dict:
    """A transaction Bundle of conditional creates, for servers with transactions and conditional create.

    Each entry: fullUrl = `full_url(resource)` (a UUIDv5 of the business identifier, so references
    between entries can be made before the Bundle is), request POST `<type>` with
    `ifNoneExist: identifier=<system>|<value>`. A resource that already has an `id` (such as the
    entered-in-error copy of a replaced Claim) is sent as PUT `<type>/<id>` instead.
    """
    entries: list[dict[str, object]] = []
    for resource in resources:
        token = business_token(resource)
        rtype = resource["resourceType"]
        entry: dict[str, object]
        if resource.get("id"):
            # No fullUrl: it must be absolute, and the server's base is not known here.
            entry = {"resource": resource, "request": {"method": "PUT", "url": f"{rtype}/{resource['id']}"}}
        else:
            entry = {"fullUrl": full_url(resource), "resource": resource,
                     "request": {"method": "POST", "url": rtype,
                                 "ifNoneExist": f"identifier={quote(token, safe=':|/')}"}}
        entries.append(entry)
    if not entries:
        raise _invalid("Bundle", "no resources to send")
    return validate_resource({"resourceType": "Bundle", "type": "transaction", "entry": entries})
