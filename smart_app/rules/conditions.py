"""Turn the patient's problem list into counted conditions: chronic, behavioral, undetermined."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from smart_app.rules.chronic import classify_icd10cm, is_behavioral, normalize_icd10cm
from smart_app.rules.facts import (
    ICD10CM_ALIASES,
    SNOMED_ALIASES,
    Attestation,
    Condition,
    PatientFacts,
)
from smart_app.rules.schema import ConditionRules


@dataclass(frozen=True)
class CountedCondition:
    """One usable problem-list entry and what the rules make of it."""

    ref: str
    key: str
    code: str | None
    system: str
    status: Literal["chronic", "not-chronic", "undetermined"]
    basis: str
    behavioral: bool | None
    high_risk: bool
    description: str | None = None


@dataclass(frozen=True)
class ConditionSummary:
    """Distinct conditions after dedupe, and the findings produced on the way."""

    conditions: tuple[CountedCondition, ...]
    findings: tuple[str, ...]

    def chronic(self) -> tuple[CountedCondition, ...]:
        """Distinct chronic conditions (one per dedupe key)."""
        return _distinct(c for c in self.conditions if c.status == "chronic")

    def undetermined(self) -> tuple[CountedCondition, ...]:
        """Conditions whose chronicity nobody could decide, minus keys already chronic."""
        chronic_keys = {c.key for c in self.chronic()}
        return _distinct(c for c in self.conditions
                         if c.status == "undetermined" and c.key not in chronic_keys)

    def behavioral(self) -> tuple[CountedCondition, ...]:
        """Distinct behavioral-health diagnoses."""
        return _distinct(c for c in self.conditions if c.behavioral)

    def behavioral_unknown(self) -> tuple[CountedCondition, ...]:
        """Conditions without an ICD-10-CM code, so not checkable as behavioral."""
        return _distinct(c for c in self.conditions if c.behavioral is None)


def _distinct(items: object) -> tuple[CountedCondition, ...]:
    seen: dict[str, CountedCondition] = {}
    for c in items:  # type: ignore[attr-defined]
        seen.setdefault(c.key, c)
    return tuple(seen.values())


def _ref(c: Condition, index: int) -> str:
    return f"condition {c.id}" if c.id else f"conditions[{index}]"


def _attestation(c: Condition, attestations: tuple[Attestation, ...],
                 month_end: dt.date) -> Attestation | None:
    found: list[Attestation] = []
    if c.attested_chronic is not None and c.attested_by and c.attested_at:
        found.append(Attestation(c.attested_chronic, c.attested_by, c.attested_at, c.id, c.code))
    norm = normalize_icd10cm(c.code) if c.code else None
    for a in attestations:
        if a.date > month_end:
            continue
        if (c.id and a.condition_id == c.id) or (
                norm and a.code and normalize_icd10cm(a.code) == norm):
            found.append(a)
    # The latest statement wins: a clinician may revise an earlier attestation.
    return max(found, key=lambda a: a.date) if found else None


def summarize(facts: PatientFacts, rules: ConditionRules, month_end: dt.date) -> ConditionSummary:
    """Classify every usable condition; skip the unusable ones with a finding naming them."""
    out: list[CountedCondition] = []
    findings: list[str] = []
    bh = rules.behavioral_health
    for i, c in enumerate(facts.conditions):
        ref = _ref(c, i)
        verification = (c.verification_status or "").lower() or None
        if verification in rules.skipped_verification_status:
            findings.append(f"{ref}: verification status '{verification}'; not counted")
            continue
        status = (c.clinical_status or "").lower()
        if not status:
            findings.append(f"{ref}: no clinical status; not counted")
            continue
        if status not in rules.countable_clinical_status:
            findings.append(f"{ref}: clinical status '{status}'; not counted")
            continue
        if c.onset is not None and c.onset > month_end:
            findings.append(f"{ref}: onset {c.onset.isoformat()} is after the month; not counted")
            continue
        if c.attested_chronic is not None and not (c.attested_by and c.attested_at):
            findings.append(f"{ref}: attested_chronic without attested_by and attested_at; "
                            "attestation ignored")
        att = _attestation(c, facts.attestations, month_end)
        system = (c.system or "").strip()
        code = (c.code or "").strip() or None
        key = f"id:{c.id or i}"
        basis = ""
        description = c.display
        behavioral: bool | None = None
        cls_status: Literal["chronic", "not-chronic", "undetermined"] = "undetermined"
        if code is None:
            findings.append(f"{ref}: no code" + ("" if att else "; not counted"))
            if att is None:
                continue
            basis = "no code"
        elif system.lower() in ICD10CM_ALIASES:
            cls = classify_icd10cm(code)
            if not cls.valid:
                findings.append(f"{ref}: '{code}' is not a valid ICD-10-CM code")
            else:
                behavioral = is_behavioral(cls.code, bh.icd10cm_prefixes, bh.extra_codes)
                key = (f"icd:{cls.category}" if rules.count_distinct_by == "category"
                       else f"icd:{cls.code}")
                description = cls.description
            cls_status, basis = cls.status, cls.basis
            code = cls.code if cls.valid else code
        elif system.lower() in SNOMED_ALIASES:
            basis = "SNOMED CT only: chronicity cannot be decided from the code"
        else:
            findings.append(f"{ref}: unknown code system '{system or '(none)'}'")
            basis = f"unknown code system '{system or '(none)'}'"
        if att is not None:
            cls_status = "chronic" if att.chronic else "not-chronic"
            basis = f"attested by {att.by} on {att.date.isoformat()}"
        out.append(CountedCondition(ref=c.id or ref, key=key, code=code, system=system,
                                    status=cls_status, basis=basis, behavioral=behavioral,
                                    high_risk=c.high_risk, description=description))
    return ConditionSummary(tuple(out), tuple(findings))
