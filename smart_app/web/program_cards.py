"""The in-chart view of a Decision: one card per program, in the rule set's order so cards never jump."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from smart_app.rules.decision import Decision, ProgramDecision, Progress, Reason
from smart_app.rules.schema import RuleSet
from smart_app.rules.standing import path_kinds, short_of_minutes_only

# Reasons a clinician can act on this month (a missing rating scale can be given and recorded in the
# app); evidence gaps such as "no behavioral-health diagnosis" mean the program does not apply, so those
# cards are folded away.
ACTIONABLE = {"consent", "minutes", "undetermined", "rating_scale"}


@dataclass(frozen=True)
class ProgramCard:
    """What the page shows for one program."""

    key: str
    title: str
    status: str  # billable | in-progress | needs-action | not-eligible
    status_text: str
    codes: tuple[tuple[str, int], ...]
    bars: tuple[Progress, ...]
    reasons: tuple[Reason, ...]
    warnings: tuple[str, ...]
    minutes_total: int
    # Minutes behind the billed codes (the claim's and the panel's counted minutes).
    minutes_counted: int = 0
    # Codes that evidence missing from the record keeps out of reach, each with what is missing; they get no
    # progress bar, since more minutes alone would not bill them.
    missing: tuple[tuple[str, str], ...] = ()
    # The time program whose minutes and enrollment the card follows (Complex CCM follows CCM's).
    time_program: str = ""

    @property
    def relevant(self) -> bool:
        """Shown open on the page (the rest sit under 'other programs')."""
        return self.status != "not-eligible"


# The rule engine's hints name input fields for integrators, e.g. "(patient.complexity)".
FIELD_NOTE = re.compile(r"\s*\((?:patient|time)\.[^)]*\)")


def for_people(reason: Reason) -> Reason:
    """The reason without the input-field notes meant for the command line."""
    return dataclasses.replace(reason, lift=FIELD_NOTE.sub("", reason.lift) if reason.lift else reason.lift)


def _met_but_blocked(program: ProgramDecision, rule_set: RuleSet | None) -> tuple[Progress, ...]:
    """Full bars for base codes whose minutes are met but that something else blocks: the evaluator reports no
    progress for them, and without these the bar would vanish as minutes grow."""
    family = rule_set.families.get(program.program) if rule_set else None
    if family is None or not program.reasons:
        return ()
    billed = {c.code for c in program.codes}
    barred = {b.code for b in program.progress}
    roles = dict(program.minutes_by_role)
    out = []
    for key, code in family.codes.items():
        need = code.time.min_minutes
        if code.base_codes or not need or key in billed or key in barred:
            continue
        minutes = sum(roles.get(role, 0) for role in code.counted_roles)
        if minutes >= need:
            out.append(Progress(key, minutes, need))
    return tuple(out)


def card_for(program: ProgramDecision, rule_set: RuleSet | None = None) -> ProgramCard:
    """Classify one program's decision for display."""
    # Judged per code: CoCM's initial-month code does not apply in a later month of the episode, while its
    # subsequent-month code lacks only minutes; the family is then on track, not "not eligible".
    paths = path_kinds(program)
    # One line per reason: a block shared by several codes (QMB status unknown for each APCM level) is said once.
    said: dict[tuple[str, str], Reason] = {}
    for r in program.reasons:
        if r.kind != "minutes":
            shown = for_people(r)
            said.setdefault((shown.reason, shown.lift), shown)
    blocking = tuple(said.values())
    if program.codes:
        status, text = "billable", "Billable this month"
    elif short_of_minutes_only(program):
        status, text = "in-progress", "On track: needs more minutes"
        blocking = ()
    elif any(kinds <= ACTIONABLE for kinds in paths.values()) or program.minutes_total:
        status, text = "needs-action", "Needs action before it can be billed"
    else:
        status, text = "not-eligible", "Not eligible as documented"
    bars = _met_but_blocked(program, rule_set) + program.progress
    missing = _missing(program, bars, paths)
    reachable = tuple(b for b in bars if b.code not in dict(missing))
    if status == "needs-action" and not reachable and missing:
        text = "Not billable as documented: evidence is missing"
    return ProgramCard(
        key=program.program, title=program.title, status=status, status_text=text,
        codes=tuple((c.code, c.units) for c in program.codes), bars=reachable, missing=missing,
        reasons=blocking,
        warnings=program.warnings + tuple(f"Needed before the claim can be approved: {gap}" for gap in program.gaps),
        minutes_total=program.minutes_total,
        minutes_counted=sum(c.minutes for c in program.codes),
        time_program=(rule_set.families[program.program].time_program or program.program
                      if rule_set is not None and program.program in rule_set.families else program.program))


def _missing(program: ProgramDecision, bars: tuple[Progress, ...],
             paths: dict[str | None, frozenset[str]]) -> tuple[tuple[str, str], ...]:
    """Each barred code whose path is blocked by evidence the care team cannot give this month, with what is missing."""
    out: list[tuple[str, str]] = []
    for bar in bars:
        kinds = paths.get(bar.code, paths.get(None, frozenset()))
        if kinds <= ACTIONABLE:
            continue
        gaps = [r.reason for r in program.reasons
                if r.kind not in ACTIONABLE and r.code in (bar.code, None)]
        out.append((bar.code, "; ".join(dict.fromkeys(gaps))))
    return tuple(out)


def program_cards(decision: Decision, rule_set: RuleSet | None = None) -> list[ProgramCard]:
    """Cards for every program in the rule set's order: a card keeps its place as minutes and statuses change.
    With the rule set, a blocked code keeps its (full) bar once its minutes are met."""
    return [card_for(p, rule_set) for p in decision.programs]
