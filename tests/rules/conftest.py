"""Builders shared by the rules tests: a well-documented patient, time entries, code maps."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from smart_app.rules import (
    CarePlan,
    Condition,
    Consent,
    Decision,
    Episode,
    PatientFacts,
    RatingScale,
    RuleSet,
    TimeEntry,
    default_rule_set,
)

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
MONTH = "2026-03"
PROGRAMS = ("ccm", "complex_ccm", "pcm", "bhi", "cocm", "apcm")


def day(d: int, month: int = 3, year: int = 2026) -> dt.date:
    """A date in the test month (March 2026) unless told otherwise."""
    return dt.date(year, month, d)


def cond(code: str | None, cid: str | None = None, system: str | None = ICD,
         **kw: object) -> Condition:
    """An active problem-list entry."""
    return Condition(code=code, system=system, clinical_status=kw.pop("clinical_status", "active"),
                     id=cid or code, **kw)  # type: ignore[arg-type]


def patient(**overrides: object) -> PatientFacts:
    """A patient who meets every program's evidence: tests take away one piece at a time."""
    base = PatientFacts(
        month=MONTH,
        conditions=(cond("E11.9", "dm", high_risk=True), cond("I10", "htn"),
                    cond("F32.A", "dep")),
        consents=tuple(Consent(p, "active", dt.date(2026, 1, 5), id=f"consent-{p}")
                       for p in PROGRAMS),
        rating_scales=(RatingScale("PHQ-9", day(3), 14, id="phq"),),
        care_plans=(CarePlan("active", dt.date(2026, 1, 5), id="plan"),),
        initiating_visit=dt.date(2025, 12, 1),
        complexity="moderate",
        episodes=(Episode("cocm", dt.date(2026, 1, 10)),),
        qmb=False,
    )
    return dataclasses.replace(base, **overrides)


def t(program: str, minutes: int, performer: str = "clinical-staff", d: int = 10,
      eid: str | None = None) -> TimeEntry:
    """One time entry in the test month."""
    return TimeEntry(program, minutes, performer, day(d), eid)


def billed(decision: Decision, program: str | None = None) -> dict[str, int]:
    """{code: units} billed, optionally for one program."""
    return {c.code: c.units for c in decision.billed()
            if program is None or c.program == program}


def reasons_text(decision: Decision, program: str) -> str:
    """Every blocking reason and lift of a program, as one searchable string."""
    return " | ".join(r.text() for r in decision.program(program).reasons)


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    """The shipped Medicare 2026 rule set."""
    return default_rule_set("medicare", 2026)
