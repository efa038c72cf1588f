"""The evaluator's input values: what is known about the patient, and the month's time entries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
# Spellings of the ICD-10-CM system seen in EHR exports; all mean the same code system.
ICD10CM_ALIASES = frozenset({ICD10CM, "icd-10-cm", "icd10cm", "icd-10", "urn:oid:2.16.840.1.113883.6.90"})
SNOMED_ALIASES = frozenset({SNOMED, "snomed", "snomed-ct", "sct"})

PERFORMER_ROLES = ("clinical-staff", "care-manager", "billing-practitioner",
                   "psychiatric-consultant")


class FactSource(StrEnum):
    """Where a fact came from: read from the EHR (its id is the FHIR resource's), or the app's own record."""

    EHR = "ehr"
    APP = "app"


@dataclass(frozen=True)
class Condition:
    """One diagnosis from the problem list; `code`/`system` may be missing in messy data."""

    code: str | None
    system: str | None
    clinical_status: str | None = "active"
    onset: dt.date | None = None
    id: str | None = None
    verification_status: str | None = None
    display: str | None = None
    high_risk: bool = False
    attested_chronic: bool | None = None
    attested_by: str | None = None
    attested_at: dt.date | None = None


@dataclass(frozen=True)
class Attestation:
    """A clinician's statement that a condition (by id or code) is, or is not, chronic."""

    chronic: bool
    by: str
    date: dt.date
    condition_id: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Consent:
    """Consent to a care-management program (ccm, pcm, bhi, cocm, apcm ...)."""

    program: str
    status: str
    date: dt.date
    id: str | None = None
    source: FactSource = FactSource.EHR


@dataclass(frozen=True)
class RatingScale:
    """A validated rating scale result (PHQ-9, GAD-7 ... by name or LOINC code)."""

    code: str
    date: dt.date
    score: float | None = None
    id: str | None = None
    source: FactSource = FactSource.EHR


@dataclass(frozen=True)
class Discharge:
    """A facility discharge and the TCM steps that followed it."""

    date: dt.date
    contact_date: dt.date | None = None
    face_to_face_date: dt.date | None = None
    complexity: str | None = None
    id: str | None = None
    contact_attempts: tuple[dt.date, ...] = ()
    medication_reconciliation_date: dt.date | None = None


@dataclass(frozen=True)
class CarePlan:
    """A care plan on file."""

    status: str
    date: dt.date
    id: str | None = None


@dataclass(frozen=True)
class Episode:
    """The start of a program episode (CoCM: tells the initial month from later months)."""

    program: str
    start: dt.date
    id: str | None = None


@dataclass(frozen=True)
class PatientFacts:
    """Everything the rules need to know about one patient, as of one service month."""

    month: str | None = None
    conditions: tuple[Condition, ...] = ()
    consents: tuple[Consent, ...] = ()
    rating_scales: tuple[RatingScale, ...] = ()
    discharges: tuple[Discharge, ...] = ()
    care_plans: tuple[CarePlan, ...] = ()
    initiating_visit: dt.date | None = None
    complexity: str | None = None
    episodes: tuple[Episode, ...] = ()
    attestations: tuple[Attestation, ...] = ()
    qmb: bool | None = None
    findings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class TimeEntry:
    """Minutes one person spent on one program on one date."""

    program: str
    minutes: int
    performer: str
    date: dt.date
    id: str | None = None
