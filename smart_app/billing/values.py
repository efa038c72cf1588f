"""Values that cross rooms at month end: a proposed claim and its lines, as JSON-safe dataclasses."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClaimLine:
    """One billed code: units, the minutes behind it by role, and the national rate as an estimate."""

    code: str
    units: int
    program: str
    descriptor: str
    minutes: int
    minutes_by_role: dict[str, int]
    service_date: dt.date
    rate: float | None = None
    rate_year: int | None = None
    entry_ids: tuple[str, ...] = ()


def ehr_origin(resource_type: str, resource_id: str | None) -> str:
    """Where a fact read from the EHR came from, for people: "from the EHR's Condition/abc"."""
    if not resource_id:
        return f"from the EHR (a {resource_type} without an id)"
    reference = resource_id if "/" in resource_id else f"{resource_type}/{resource_id}"
    return f"from the EHR's {reference}"


@dataclass(frozen=True)
class Diagnosis:
    """A qualifying diagnosis on the claim: a Condition on the EHR's problem list."""

    code: str
    system: str
    display: str = ""
    condition_id: str | None = None
    # The programs whose lines point at it; empty: every line does.
    programs: tuple[str, ...] = ()

    @property
    def origin(self) -> str:
        """Where it came from, for people."""
        return ehr_origin("Condition", self.condition_id)


@dataclass(frozen=True)
class Performer:
    """A person whose time or supervision backs the claim."""

    reference: str
    role: str
    minutes: int = 0
    name: str = ""
    credentials: str = ""
    npi: str = ""

    @property
    def label(self) -> str:
        """ "Dr. Adaeze Okafor, MD, NPI 1234567893", with what is known; the reference when nothing is."""
        return ", ".join(part for part in (self.name, self.credentials, f"NPI {self.npi}" if self.npi else "")
                         if part) or self.reference


@dataclass(frozen=True)
class LoggedTime:
    """One ledger entry on the itemized time log: when, who, what, and which code its minutes count toward."""

    entry_id: str
    date: str
    start: str
    end: str
    minutes: int
    program: str
    activity: str
    performer: str
    role: str
    note: str = ""
    performer_name: str = ""
    # (code, minutes) the entry's minutes count toward, in billing order.
    counted: tuple[tuple[str, int], ...] = ()
    # Minutes that count toward no code, and why, in plain words.
    not_counted: int = 0
    why_not: str = ""


@dataclass(frozen=True)
class ConsentEvidence:
    """The consent a program's codes rely on: a Consent read from the EHR (`consent_id` its FHIR id), or one
    recorded in the app (`consent_id` the app's record id)."""

    program: str
    date: dt.date
    consent_id: str | None = None
    source: str = "app"  # app | ehr (rules.facts.FactSource)

    @property
    def origin(self) -> str:
        """Where it came from, for people."""
        if self.source == "ehr":
            return ehr_origin("Consent", self.consent_id)
        return f"recorded in the app (consent record {self.consent_id})" if self.consent_id \
            else "recorded in the app"


@dataclass(frozen=True)
class ProposedClaim:
    """Everything a biller reviews and the EHR receives for one patient-month."""

    organization_id: str
    patient_id: str
    month: str
    lines: tuple[ClaimLine, ...]
    diagnoses: tuple[Diagnosis, ...] = ()
    performers: tuple[Performer, ...] = ()
    consents: tuple[ConsentEvidence, ...] = ()
    billing_practitioner: str = ""
    supervising_practitioner: str = ""
    place_of_service: str = "11"
    coverage: str | None = None
    patient_name: str = ""
    patient_birth_date: str | None = None
    patient_mrn: str | None = None
    patient_mbi: str | None = None
    warnings: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    late_entries: tuple[str, ...] = ()
    decision: dict = field(default_factory=dict)
    time_log: tuple[LoggedTime, ...] = ()
    # TCM: the face-to-face visit the claim rests on, when it was still to come at proposal time. Such a claim
    # may not be approved; the rollup after the visit proposes a version without it.
    not_before: dt.date | None = None

    @property
    def billable(self) -> bool:
        """At least one code is billed."""
        return bool(self.lines)

    @property
    def coverage_origin(self) -> str:
        """Where the insurance on the claim came from, for people."""
        return ehr_origin("Coverage", self.coverage) if self.coverage else "no Coverage on file in the EHR"

    def to_json(self) -> dict:
        """JSON-safe form (dates as ISO strings), built in one pass.

        Not `dataclasses.asdict`, which deep-copies every leaf (the decision included) before a second pass
        turns tuples into lists and dates into strings; over a month of entries that was the rollup's largest
        cost. Leaves are not copied, and the decision, already plain JSON (`Decision.to_json`), is taken as it is.
        """
        return {f.name: getattr(self, f.name) if f.name == "decision" else _jsonable(getattr(self, f.name))
                for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> ProposedClaim:
        """Inverse of `to_json`."""
        lines = tuple(ClaimLine(**{**line, "service_date": dt.date.fromisoformat(line["service_date"]),
                                   "entry_ids": tuple(line.get("entry_ids", ()))}) for line in data["lines"])
        consents = tuple(ConsentEvidence(**{**c, "date": dt.date.fromisoformat(c["date"])})
                         for c in data.get("consents", ()))
        return cls(**{**data, "lines": lines, "consents": consents,
                      "diagnoses": tuple(Diagnosis(**{**d, "programs": tuple(d.get("programs", ()))})
                                         for d in data.get("diagnoses", ())),
                      "time_log": tuple(LoggedTime(**{**t, "counted": tuple((str(c), int(m)) for c, m in t["counted"])})
                                        for t in data.get("time_log", ())),
                      "performers": tuple(Performer(**p) for p in data.get("performers", ())),
                      "warnings": tuple(data.get("warnings", ())), "evidence": tuple(data.get("evidence", ())),
                      "late_entries": tuple(data.get("late_entries", ())),
                      "not_before": dt.date.fromisoformat(data["not_before"]) if data.get("not_before") else None})


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value
