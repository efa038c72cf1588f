"""The chart context shown on the in-chart page: the patient banner and active problems."""

from __future__ import annotations

from dataclasses import dataclass, field

from smart_app.ehr.names import human_name
from smart_app.ehr.record import PatientRecord

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
ACTIVE_STATUSES = ("active", "recurrence", "relapse")


@dataclass(frozen=True)
class Problem:
    """One active problem as the clinician reads it."""

    id: str
    display: str
    codes: tuple[str, ...]
    onset: str | None


@dataclass(frozen=True)
class ChartSummary:
    """Who the patient is, their active problems, and who is signed in."""

    patient_id: str
    name: str
    birth_date: str | None
    gender: str | None
    mrn: str | None
    problems: tuple[Problem, ...]
    user_name: str | None
    findings: tuple[str, ...] = field(default=())


def _mrn(patient: dict) -> str | None:
    for ident in patient.get("identifier") or []:
        codes = [c.get("code") for c in (ident.get("type") or {}).get("coding") or []]
        if "MR" in codes or "mrn" in str(ident.get("system", "")).lower():
            value = ident.get("value")
            return str(value) if value is not None else None
    return None


def problem_from_condition(condition: dict) -> Problem | None:
    """A Problem from a Condition, or None when it has nothing a person could read."""
    code = condition.get("code") or {}
    codings = [c for c in code.get("coding") or [] if isinstance(c, dict)]
    labels = []
    for coding in codings:
        system = {ICD10CM: "ICD-10-CM", SNOMED: "SNOMED CT"}.get(str(coding.get("system")), "code")
        if coding.get("code"):
            labels.append(f"{system} {coding['code']}")
    display = code.get("text") or next((c.get("display") for c in codings if c.get("display")), None)
    if not display and not labels:
        return None
    onset = condition.get("onsetDateTime") or (condition.get("onsetPeriod") or {}).get("start")
    return Problem(id=str(condition.get("id", "")), display=str(display or labels[0]),
                   codes=tuple(labels), onset=str(onset)[:10] if onset else None)


def chart_summary(record: PatientRecord) -> ChartSummary:
    """The banner, active problems and signed-in user from a patient-month's record."""
    findings = [f"The signed-in user could not be read: {record.unavailable['user']}"] \
        if "user" in record.unavailable else []
    problems = []
    for condition in record.get("conditions"):
        status = next((c.get("code") for c in (condition.get("clinicalStatus") or {}).get("coding") or []), None)
        verification = next((c.get("code") for c in (condition.get("verificationStatus") or {}).get("coding") or []),
                             None)
        if status not in ACTIVE_STATUSES or verification == "entered-in-error":
            continue
        problem = problem_from_condition(condition)
        if problem is None:
            findings.append(f"Condition/{condition.get('id', '?')} has no code or text; not shown.")
        else:
            problems.append(problem)
    patient = record.patient
    return ChartSummary(
        patient_id=str(patient.get("id", "")), name=human_name(patient) or f"Patient {patient.get('id')}",
        birth_date=patient.get("birthDate"), gender=patient.get("gender"), mrn=_mrn(patient),
        problems=tuple(sorted(problems, key=lambda p: p.display.lower())),
        user_name=human_name(record.user) if record.user else None, findings=tuple(findings))
