"""The chart context shown on the in-chart page: the patient banner and active problems."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import EhrError

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"


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


def human_name(resource: dict) -> str | None:
    """A person's display name from FHIR HumanName (official first)."""
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    names.sort(key=lambda n: n.get("use") != "official")
    for name in names:
        if name.get("text"):
            return str(name["text"])
        parts = [*map(str, name.get("prefix") or []), *map(str, name.get("given") or []),
                 str(name.get("family") or "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return None


def _mrn(patient: dict) -> str | None:
    for ident in patient.get("identifier") or []:
        codes = [c.get("code") for c in (ident.get("type") or {}).get("coding") or []]
        if "MR" in codes or "mrn" in str(ident.get("system", "")).lower():
            return ident.get("value")
    return None


def problem_from_condition(condition: dict) -> Problem | None:
    """A Problem from a Condition, or None when it has nothing a person could read."""
    code = condition.get("code") or {}
    codings = [c for c in code.get("coding") or [] if isinstance(c, dict)]
    labels = []
    for coding in codings:
        system = {ICD10CM: "ICD-10-CM", SNOMED: "SNOMED CT"}.get(coding.get("system"), "code")
        if coding.get("code"):
            labels.append(f"{system} {coding['code']}")
    display = code.get("text") or next((c.get("display") for c in codings if c.get("display")), None)
    if not display and not labels:
        return None
    onset = condition.get("onsetDateTime") or (condition.get("onsetPeriod") or {}).get("start")
    return Problem(id=str(condition.get("id", "")), display=str(display or labels[0]),
                   codes=tuple(labels), onset=str(onset)[:10] if onset else None)


async def load_chart_summary(client: FhirClient, patient_id: str,
                             fhir_user: str | None) -> ChartSummary:
    """Read the patient, their active problems and the signed-in user, concurrently."""
    reads = [client.read("Patient", patient_id),
             client.search("Condition", {"patient": patient_id, "clinical-status": "active"})]
    user_ref = fhir_user.rsplit("/", 2)[-2:] if fhir_user else None
    if user_ref and len(user_ref) == 2:
        reads.append(client.read(user_ref[0], user_ref[1]))
    results = await asyncio.gather(*reads, return_exceptions=True)
    patient, conditions = results[0], results[1]
    for result in (patient, conditions):
        if isinstance(result, BaseException):
            raise result
    findings: list[str] = []
    user_name = None
    if len(results) > 2:
        if isinstance(results[2], EhrError):
            # Who is signed in is a courtesy on this page; the patient's data is not.
            findings.append(f"Signed-in user not shown: {results[2].message}")
        elif isinstance(results[2], BaseException):
            raise results[2]
        else:
            user_name = human_name(results[2])
    problems = []
    for condition in conditions:
        problem = problem_from_condition(condition)
        if problem is None:
            findings.append(f"Condition/{condition.get('id', '?')} has no code or text; not shown.")
        else:
            problems.append(problem)
    return ChartSummary(
        patient_id=patient_id, name=human_name(patient) or f"Patient {patient_id}",
        birth_date=patient.get("birthDate"), gender=patient.get("gender"), mrn=_mrn(patient),
        problems=tuple(sorted(problems, key=lambda p: p.display.lower())),
        user_name=user_name, findings=tuple(findings))
