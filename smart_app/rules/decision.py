"""What the evaluator decided for one patient-month, and its JSON form for billers and scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BilledCode:
    """One billable code with its units and the minutes (by performer role) behind it."""

    code: str
    units: int
    program: str
    descriptor: str
    minutes: int = 0
    minutes_by_role: tuple[tuple[str, int], ...] = ()
    entry_ids: tuple[str, ...] = ()
    rate: float | None = None
    rate_year: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "code": self.code, "units": self.units, "program": self.program,
            "descriptor": self.descriptor, "minutes": self.minutes,
            "minutes_by_role": dict(self.minutes_by_role), "entry_ids": list(self.entry_ids),
            "national_rate": self.rate, "rate_year": self.rate_year,
        }


@dataclass(frozen=True)
class Reason:
    """Why a code or program is not billable, and what would lift the block."""

    reason: str
    lift: str
    kind: str
    code: str | None = None

    def text(self) -> str:
        """One line a biller can read."""
        prefix = f"{self.code}: " if self.code else ""
        return f"{prefix}{self.reason} (to lift: {self.lift})"

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"code": self.code, "kind": self.kind, "reason": self.reason, "lift": self.lift}


@dataclass(frozen=True)
class EvidenceItem:
    """A piece of evidence a decision rests on (a condition, a consent, a rating scale ...)."""

    kind: str
    id: str | None
    date: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"kind": self.kind, "id": self.id, "date": self.date, "detail": self.detail}


@dataclass(frozen=True)
class Alternative:
    """One billable way to code a program this month, and whether the policy picked it."""

    codes: tuple[tuple[str, int], ...]
    minutes: int
    rate_total: float
    chosen: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"codes": [{"code": c, "units": u} for c, u in self.codes],
                "minutes": self.minutes, "national_rate_total": round(self.rate_total, 2),
                "chosen": self.chosen, "note": self.note}


@dataclass(frozen=True)
class Progress:
    """How far this month's counted minutes are from a code's next billable unit."""

    code: str
    minutes: int
    target: int
    unit: int = 1
    at_cap: bool = False

    @property
    def remaining(self) -> int:
        """Minutes still needed for the next unit (0 at the cap)."""
        return max(self.target - self.minutes, 0)

    def text(self) -> str:
        """One line for people: '99490: 14 of 20 minutes'."""
        if self.at_cap:
            return f"{self.code}: at the cap of {self.unit} units"
        if self.unit > 1:
            return f"{self.code}: {self.remaining} more minutes for unit {self.unit}"
        if self.minutes >= self.target:
            # Reached but not billed (evidence missing): "25 of 20 minutes" read as a slip of the app.
            return f"{self.code}: {self.minutes} minutes, the {self.target} needed are reached"
        return f"{self.code}: {self.minutes} of {self.target} minutes"


@dataclass(frozen=True)
class ProgramDecision:
    """The outcome for one code family (ccm, complex_ccm, pcm, bhi, cocm, tcm, apcm)."""

    program: str
    title: str
    codes: tuple[BilledCode, ...] = ()
    minutes_total: int = 0
    minutes_by_role: tuple[tuple[str, int], ...] = ()
    evidence: tuple[EvidenceItem, ...] = ()
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[str, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    progress: tuple[Progress, ...] = ()
    # Evidence the billed codes need that is not on file: their claim cannot be approved until it is recorded.
    gaps: tuple[str, ...] = ()

    @property
    def billable(self) -> bool:
        """True when at least one code of this family is billed."""
        return bool(self.codes)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "program": self.program, "title": self.title, "billable": self.billable,
            "codes": [c.to_json() for c in self.codes],
            "minutes_total": self.minutes_total, "minutes_by_role": dict(self.minutes_by_role),
            "evidence": [e.to_json() for e in self.evidence],
            "reasons": [r.to_json() for r in self.reasons],
            "warnings": list(self.warnings),
            "alternatives": [a.to_json() for a in self.alternatives],
            "progress": [p.text() for p in self.progress],
            "gaps": list(self.gaps),
        }


@dataclass(frozen=True)
class Decision:
    """Every program's outcome for one patient-month under one rule set and policy."""

    month: str
    payer: str
    year: int
    policy: str
    programs: tuple[ProgramDecision, ...]
    findings: tuple[str, ...] = field(default=())

    def billed(self) -> tuple[BilledCode, ...]:
        """All billed codes, in rule-file order."""
        return tuple(c for p in self.programs for c in p.codes)

    def program(self, key: str) -> ProgramDecision:
        """The outcome of one family (KeyError if the rule set has no such family)."""
        for p in self.programs:
            if p.program == key:
                return p
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        """The command-line output: codes, not_billable, plus the full per-program detail."""
        return {
            "month": self.month,
            "rules": {"payer": self.payer, "year": self.year},
            "policy": self.policy,
            "codes": [{"code": c.code, "units": c.units, "program": c.program,
                       "minutes": c.minutes, "minutes_by_role": dict(c.minutes_by_role),
                       "national_rate": c.rate, "rate_year": c.rate_year}
                      for c in self.billed()],
            "not_billable": [{"program": p.program,
                              "reasons": [r.text() for r in p.reasons],
                              "details": [r.to_json() for r in p.reasons]}
                             for p in self.programs if not p.billable],
            "warnings": [f"{p.program}: {w}" for p in self.programs for w in p.warnings],
            "findings": list(self.findings),
            "programs": [p.to_json() for p in self.programs],
        }
