"""Where each time program of a patient-month stands, read off the evaluator's Decision (never recomputed).

The panel, the patient page's cards and the rollup all show the same Decision; this module only summarises
it per time program (ccm, pcm, bhi, cocm ...): the codes billed, the minutes counted behind them (or toward
the nearest threshold), the next threshold, and whether anything besides minutes blocks the program.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smart_app.rules.decision import Decision, ProgramDecision, Progress
from smart_app.rules.schema import RuleSet

# Reason kinds that say "more minutes" and nothing else.
MINUTES_ONLY = frozenset({"minutes"})


def path_kinds(program: ProgramDecision) -> dict[str | None, frozenset[str]]:
    """The kinds of reasons blocking each code path of a family (None: reasons shared by every path)."""
    shared = frozenset(r.kind for r in program.reasons if r.code is None)
    out: dict[str | None, frozenset[str]] = {}
    for r in program.reasons:
        if r.code is not None:
            out[r.code] = out.get(r.code, shared) | {r.kind}
    if not out:
        out[None] = shared
    return out


def short_of_minutes_only(program: ProgramDecision) -> bool:
    """True when some code of the family lacks only minutes (it will bill once the time is there)."""
    if program.codes:
        return False
    return any(kinds and kinds <= MINUTES_ONLY for kinds in path_kinds(program).values())


@dataclass(frozen=True)
class Standing:
    """One time program's month as the evaluator decided it."""

    program: str
    time_based: bool
    codes: tuple[tuple[str, int], ...] = ()
    # Minutes behind the billed codes; when nothing is billed, the counted minutes toward the nearest threshold.
    counted: int = 0
    next_code: str | None = None
    next_target: int | None = None
    needed: int | None = None
    # False when something other than minutes (consent, evidence, an exclusion) keeps every code from billing.
    eligible: bool = True
    # Minutes the evaluator took in for the program this month (counted or not).
    logged: int = 0

    @property
    def relevant(self) -> bool:
        """Worth a row: billed, open to billing, or with time logged."""
        return bool(self.codes) or self.eligible or self.logged > 0

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (kept with the month's snapshot)."""
        return {"program": self.program, "time_based": self.time_based,
                "codes": [[c, u] for c, u in self.codes], "counted": self.counted,
                "next_code": self.next_code, "next_target": self.next_target, "needed": self.needed,
                "eligible": self.eligible, "logged": self.logged}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Standing:
        """The inverse of `to_json`."""
        return cls(program=str(data["program"]), time_based=bool(data["time_based"]),
                   codes=tuple((str(c), int(u)) for c, u in data.get("codes") or ()),
                   counted=int(data.get("counted") or 0), next_code=data.get("next_code"),
                   next_target=data.get("next_target"), needed=data.get("needed"),
                   eligible=bool(data.get("eligible", True)), logged=int(data.get("logged") or 0))


def _nearest(progress: list[tuple[int, Progress]]) -> tuple[int, Progress] | None:
    open_ = [(order, p) for order, p in progress if not p.at_cap]
    if not open_:
        return None
    return min(open_, key=lambda item: (item[1].remaining, item[0]))


def standings(decision: Decision, rule_set: RuleSet) -> dict[str, Standing]:
    """Each time program's standing (keyed by time program), in rule-file order of first appearance."""
    grouped: dict[str, list[ProgramDecision]] = {}
    for p in decision.programs:
        fam = rule_set.families.get(p.program)
        if fam is None:
            continue
        grouped.setdefault(fam.time_program, []).append(p)
    out: dict[str, Standing] = {}
    for program, fams in grouped.items():
        time_based = any(rule_set.families[p.program].time_based for p in fams)
        logged = max(p.minutes_total for p in fams)
        billed = [p for p in fams if p.codes]
        if billed:
            chosen = billed[0]
            codes = tuple((c.code, c.units) for c in chosen.codes)
            counted = sum(c.minutes for c in chosen.codes)
            # The next unit of the billed codes' add-on (other paths' progress does not apply once one bills).
            billed_codes = {c.code for c in chosen.codes}
            addons = {k for k, code in rule_set.families[chosen.program].codes.items()
                      if billed_codes & set(code.base_codes)}
            mine = [(i, pr) for i, pr in enumerate(chosen.progress) if pr.code in addons]
            nxt = _nearest(mine) if time_based else None
            out[program] = Standing(
                program, time_based, codes, counted,
                nxt[1].code if nxt else None, nxt[1].target if nxt else None, nxt[1].remaining if nxt else None,
                logged=logged)
            continue
        viable = [p for p in fams if short_of_minutes_only(p)]
        considered = viable or fams
        progress = [(i, pr) for i, (f, pr) in enumerate((f, pr) for f in considered for pr in f.progress)]
        nxt = _nearest(progress) if time_based else None
        counted = nxt[1].minutes if nxt else max((pr.minutes for _, pr in progress), default=0)
        out[program] = Standing(
            program, time_based, (), counted, nxt[1].code if nxt else None, nxt[1].target if nxt else None,
            nxt[1].remaining if nxt else None, eligible=bool(viable), logged=logged)
    return out
