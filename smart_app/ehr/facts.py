"""Turn the FHIR resources of a patient-month into the rules' `PatientFacts`.

Malformed or surprising resources never stop the mapping: each is skipped with a finding that
names it, and the evaluator decides conservatively without it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from smart_app.ehr.record import CARE_PROGRAM, LOINC, PatientRecord
from smart_app.ledger.months import Month
from smart_app.rules.facts import (
    ICD10CM,
    SNOMED,
    CarePlan,
    Condition,
    Consent,
    Discharge,
    Episode,
    PatientFacts,
    RatingScale,
)

MDM_CODE = "mdm-complexity"
APP_CONSENT = "urn:smart-app:consent"
SEVERE = ("http://snomed.info/sct", "24484000")
INPATIENT_CLASSES = {"IMP", "ACUTE", "NONAC", "OBSENC", "SS"}
VIRTUAL_CLASSES = {"VR", "PHONE"}
FACE_TO_FACE_CLASSES = {"AMB", "HH"}
COMPLEXITY_LEVELS = ("low", "moderate", "high")


def _date(value: object) -> dt.date | None:
    """The calendar date of a FHIR date or dateTime as written (its local date), or None."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _codings(concept: object) -> list[dict]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _first_code(concept: object, system: str | None = None) -> str | None:
    for coding in _codings(concept):
        code = coding.get("code")
        if (system is None or coding.get("system") == system) and isinstance(code, str):
            return code
    return None


def _name(resource: dict) -> str:
    return f"{resource.get('resourceType', 'Resource')}/{resource.get('id', '?')}"


def _programs(concepts: object) -> list[str]:
    if not isinstance(concepts, list):
        return []
    return [code for concept in concepts if (code := _first_code(concept, CARE_PROGRAM))]


def map_condition(resource: dict, findings: list[str]) -> Condition | None:
    """A rules Condition from a FHIR Condition, preferring the ICD-10-CM coding."""
    codings = _codings(resource.get("code"))
    chosen = (next((c for c in codings if c.get("system") == ICD10CM and c.get("code")), None)
              or next((c for c in codings if c.get("system") == SNOMED and c.get("code")), None)
              or next((c for c in codings if c.get("code")), None))
    if chosen is None:
        findings.append(f"{_name(resource)} has no coded diagnosis; it cannot count toward eligibility.")
    severity = {(c.get("system"), c.get("code")) for c in _codings(resource.get("severity"))}
    return Condition(
        code=str(chosen["code"]) if chosen else None,
        system=str(chosen.get("system")) if chosen and chosen.get("system") else None,
        clinical_status=_first_code(resource.get("clinicalStatus")),
        verification_status=_first_code(resource.get("verificationStatus")),
        onset=_date(resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")),
        id=str(resource.get("id")) if resource.get("id") else None,
        display=(resource.get("code") or {}).get("text") or (chosen or {}).get("display"),
        high_risk=SEVERE in severity)


def map_consents(resources: Iterable[dict], findings: list[str]) -> list[Consent]:
    """One Consent per program named on each FHIR Consent."""
    consents: list[Consent] = []
    for resource in resources:
        if any(i.get("system") == APP_CONSENT for i in resource.get("identifier") or [] if isinstance(i, dict)):
            # Written by this app, whose own record of it is authoritative (and already counted).
            continue
        programs = _programs(resource.get("category"))
        when = _date(resource.get("dateTime")) or _date(
            ((resource.get("provision") or {}).get("period") or {}).get("start"))
        if not programs:
            findings.append(f"{_name(resource)} names no care-management program; not counted as consent.")
            continue
        if when is None:
            findings.append(f"{_name(resource)} has no date; not counted as consent.")
            continue
        consents.extend(Consent(program=p, status=str(resource.get("status", "unknown")), date=when,
                                id=str(resource.get("id"))) for p in programs)
    return consents


def map_scales(resources: Iterable[dict], findings: list[str]) -> list[RatingScale]:
    """Final rating-scale results with their LOINC code, date and score."""
    scales = []
    for resource in resources:
        code = _first_code(resource.get("code"), LOINC)
        when = _date(resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start"))
        if resource.get("status") not in ("final", "amended", "corrected"):
            findings.append(f"{_name(resource)} has status {resource.get('status')!r}; not counted.")
            continue
        if code is None or when is None:
            findings.append(f"{_name(resource)} lacks a LOINC code or a date; not counted.")
            continue
        quantity = resource.get("valueQuantity") or {}
        score = quantity.get("value") if isinstance(quantity, dict) else None
        score = resource.get("valueInteger", score)
        scales.append(RatingScale(code=code, date=when, id=str(resource.get("id")),
                                  score=float(score) if isinstance(score, int | float) else None))
    return scales


def _encounter_class(resource: dict) -> str | None:
    klass = resource.get("class")
    return klass.get("code") if isinstance(klass, dict) else None


def _complexity(observations: Iterable[dict], encounter_id: str | None = None,
                month: tuple[dt.date, dt.date] | None = None) -> str | None:
    """The highest documented decision-making complexity, for one visit or within a month."""
    found = []
    for obs in observations:
        if _first_code(obs.get("code"), CARE_PROGRAM) != MDM_CODE or obs.get("status") not in ("final", "amended"):
            continue
        level = _first_code(obs.get("valueCodeableConcept"))
        if level not in COMPLEXITY_LEVELS:
            continue
        linked = str((obs.get("encounter") or {}).get("reference", "")).rsplit("/", 1)[-1]
        when = _date(obs.get("effectiveDateTime"))
        if encounter_id is not None and linked == encounter_id:
            found.append(level)
        elif month is not None and when is not None and month[0] <= when < month[1]:
            found.append(level)
    return max(found, key=COMPLEXITY_LEVELS.index) if found else None


# Codes of a medication reconciliation Procedure: SNOMED CT "Medication reconciliation" and "Review of
# medication"; CPT II 1111F "Discharge medications reconciled with the current medication list".
MEDICATION_RECONCILIATION = frozenset({"430193006", "182836005", "1111F"})
# TCM's service period: 30 days from the discharge (CMS MLN908628).
TCM_PERIOD_DAYS = 30


def medication_reconciliations(procedures: Iterable[dict]) -> list[dt.date]:
    """Dates of completed medication reconciliation Procedures, oldest first."""
    found = []
    for resource in procedures:
        codes = {str(c.get("code")) for c in (resource.get("code") or {}).get("coding") or [] if isinstance(c, dict)}
        if resource.get("status") != "completed" or not codes & MEDICATION_RECONCILIATION:
            continue
        when = _date(resource.get("performedDateTime") or (resource.get("performedPeriod") or {}).get("start"))
        if when is not None:
            found.append(when)
    return sorted(found)


def map_discharges(encounters: list[dict], observations: list[dict],
                   procedures: Iterable[dict] = ()) -> list[Discharge]:
    """Facility discharges with the first interactive contact and face-to-face visit after each, and the first
    medication reconciliation (a Procedure) in the 30 days from the discharge."""
    reconciled = medication_reconciliations(procedures)
    finished = [e for e in encounters if e.get("status") == "finished"]
    discharges = []
    for stay in finished:
        end = _date((stay.get("period") or {}).get("end"))
        if _encounter_class(stay) not in INPATIENT_CLASSES or end is None:
            continue
        after = sorted(((_date((e.get("period") or {}).get("start")), e) for e in finished if e is not stay),
                       key=lambda pair: pair[0] or dt.date.max)
        contact = next((d for d, e in after if d and d >= end and _encounter_class(e) in VIRTUAL_CLASSES), None)
        visit = next(((d, e) for d, e in after if d and d >= end and _encounter_class(e) in FACE_TO_FACE_CLASSES),
                     None)
        med = next((d for d in reconciled if 0 <= (d - end).days < TCM_PERIOD_DAYS), None)
        discharges.append(Discharge(
            date=end, contact_date=contact, face_to_face_date=visit[0] if visit else None,
            complexity=_complexity(observations, encounter_id=str(visit[1].get("id"))) if visit else None,
            id=str(stay.get("id")), medication_reconciliation_date=med))
    return discharges


def map_care_plans(resources: Iterable[dict]) -> tuple[list[CarePlan], list[Episode]]:
    """Care plans on file, and program episodes (a CarePlan naming a program starts one)."""
    plans: list[CarePlan] = []
    episodes: list[Episode] = []
    for resource in resources:
        start = _date((resource.get("period") or {}).get("start")) or _date(resource.get("created"))
        if start is None:
            continue
        plans.append(CarePlan(status=str(resource.get("status", "unknown")), date=start, id=str(resource.get("id"))))
        if resource.get("status") in ("active", "completed"):
            episodes.extend(Episode(program=p, start=start, id=str(resource.get("id")))
                            for p in _programs(resource.get("category")))
    return plans, episodes


def _initiating_visit(encounters: Iterable[dict], before: dt.date) -> dt.date | None:
    """The latest finished face-to-face visit before the end of the month."""
    dates = [d for e in encounters if e.get("status") == "finished" and _encounter_class(e) in FACE_TO_FACE_CLASSES
             and (d := _date((e.get("period") or {}).get("start"))) and d < before]
    return max(dates) if dates else None


# Who the user is is read with the record but decides no billing: its gaps are the roles' business, not a finding.
IDENTITY_PARTS = ("user", "user_roles")


def facts_from_record(record: PatientRecord, month: str) -> PatientFacts:
    """Map the patient-month's FHIR record into the evaluator's input."""
    service = Month.parse(month)
    bounds = (service.first_day, service.next().first_day)
    findings = [f"{part.replace('_', ' ').capitalize()} could not be read from the EHR ({why}); "
                "decisions that need them are withheld." for part, why in record.unavailable.items()
                if part not in IDENTITY_PARTS]
    conditions = [c for r in record.get("conditions") if (c := map_condition(r, findings))]
    observations = record.get("scales") + record.get("mdm")
    plans, episodes = map_care_plans(record.get("care_plans"))
    encounters = record.get("encounters")
    return PatientFacts(
        month=month, conditions=tuple(conditions),
        consents=tuple(map_consents(record.get("consents"), findings)),
        rating_scales=tuple(map_scales(record.get("scales"), findings)),
        discharges=tuple(map_discharges(encounters, observations, record.get("procedures"))),
        care_plans=tuple(plans), episodes=tuple(episodes),
        initiating_visit=_initiating_visit(encounters, bounds[1]),
        complexity=_complexity(observations, month=bounds),
        findings=tuple(findings))
