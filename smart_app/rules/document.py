"""The `rules evaluate` input document: its pydantic model, JSON Schema, and parsing into facts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smart_app.paths import data_path
from smart_app.rules.errors import FactsError
from smart_app.rules.facts import (
    Attestation,
    CarePlan,
    Condition,
    Consent,
    Discharge,
    Episode,
    PatientFacts,
    RatingScale,
    TimeEntry,
)

SCHEMA_FILE = "evaluate-input.schema.json"


class _Doc(BaseModel):
    # Unknown fields are errors so a misspelt field is caught rather than silently ignored.
    model_config = ConfigDict(extra="forbid")


class ConditionIn(_Doc):
    """A problem-list entry; code and system may be missing (skipped with a finding)."""

    code: str | None = None
    system: str | None = None
    clinical_status: str | None = None
    onset: dt.date | None = None
    id: str | None = None
    verification_status: str | None = None
    display: str | None = None
    high_risk: bool = False
    attested_chronic: bool | None = None
    attested_by: str | None = None
    attested_at: dt.date | None = None


class ConsentIn(_Doc):
    """Consent to a program: status 'active' counts; later 'inactive'/'rejected' withdraws."""

    program: str = Field(min_length=1)
    status: str = Field(min_length=1)
    date: dt.date
    id: str | None = None


class RatingScaleIn(_Doc):
    """A rating scale by name (PHQ-9) or LOINC code."""

    code: str = Field(min_length=1)
    date: dt.date
    score: float | None = None
    id: str | None = None


class DischargeIn(_Doc):
    """A discharge and its TCM steps."""

    date: dt.date
    contact_date: dt.date | None = None
    face_to_face_date: dt.date | None = None
    complexity: Literal["low", "moderate", "high"] | None = None
    id: str | None = None
    contact_attempts: list[dt.date] = []
    medication_reconciliation_date: dt.date | None = None


class CarePlanIn(_Doc):
    """A care plan on file."""

    status: str = Field(min_length=1)
    date: dt.date
    id: str | None = None


class EpisodeIn(_Doc):
    """A program episode start (CoCM)."""

    program: str = Field(min_length=1)
    start: dt.date
    id: str | None = None


class AttestationIn(_Doc):
    """A clinician's chronicity attestation for a condition (by id or by code)."""

    condition_id: str | None = None
    code: str | None = None
    chronic: bool
    by: str = Field(min_length=1)
    date: dt.date


class PatientIn(_Doc):
    """What is known about the patient."""

    conditions: list[ConditionIn] = []
    consents: list[ConsentIn] = []
    rating_scales: list[RatingScaleIn] = []
    discharges: list[DischargeIn] = []
    care_plans: list[CarePlanIn] = []
    initiating_visit: dt.date | None = None
    complexity: Literal["low", "moderate", "high"] | None = None
    episodes: list[EpisodeIn] = []
    attestations: list[AttestationIn] = []
    qmb: bool | None = None


class TimeIn(_Doc):
    """Minutes one person spent on one program on one date."""

    program: str = Field(min_length=1)
    minutes: int = Field(ge=0)
    performer: Literal["clinical-staff", "care-manager", "billing-practitioner",
                       "psychiatric-consultant"]
    date: dt.date
    id: str | None = None


class EvaluateInput(_Doc):
    """One patient-month: `smart-app rules evaluate FACTS.json` reads this document."""

    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    patient: PatientIn
    time: list[TimeIn] = []


def input_json_schema() -> dict[str, Any]:
    """The JSON Schema of the input document (the file in rules/ is generated from this)."""
    schema = EvaluateInput.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://smart-app.example/rules/evaluate-input.schema.json"
    return schema


def schema_path() -> Path:
    """Where the shipped JSON Schema lives."""
    return data_path("rules") / SCHEMA_FILE


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_document(data: object, source: str = "") -> tuple[PatientFacts, list[TimeEntry], str]:
    """Validate a decoded JSON document; return (facts, time entries, month) or raise FactsError."""
    try:
        doc = EvaluateInput.model_validate(data)
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))
        more = len(err.errors()) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise FactsError(_path(loc), e["msg"] + tail, source) from None
    p = doc.patient
    facts = PatientFacts(
        month=doc.month,
        conditions=tuple(Condition(**c.model_dump()) for c in p.conditions),
        consents=tuple(Consent(**c.model_dump()) for c in p.consents),
        rating_scales=tuple(RatingScale(**s.model_dump()) for s in p.rating_scales),
        discharges=tuple(Discharge(**{**d.model_dump(),
                                      "contact_attempts": tuple(d.contact_attempts)})
                         for d in p.discharges),
        care_plans=tuple(CarePlan(**c.model_dump()) for c in p.care_plans),
        initiating_visit=p.initiating_visit,
        complexity=p.complexity,
        episodes=tuple(Episode(**e.model_dump()) for e in p.episodes),
        attestations=tuple(Attestation(**a.model_dump()) for a in p.attestations),
        qmb=p.qmb,
    )
    entries = [TimeEntry(**t.model_dump()) for t in doc.time]
    return facts, entries, doc.month


def load_document(path: str | Path) -> tuple[PatientFacts, list[TimeEntry], str]:
    """Read a FACTS.json file; FactsError names the file and the path inside it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise FactsError("", f"cannot read the file ({err.strerror})", str(p)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise FactsError("", f"not valid JSON (line {err.lineno}, column {err.colno}: "
                             f"{err.msg})", str(p)) from None
    return parse_document(data, str(p))
