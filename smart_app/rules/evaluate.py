"""evaluate(facts, minutes, rule_set) -> Decision: a pure, deterministic monthly billing decision."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from smart_app.rules.conditions import ConditionSummary, summarize
from smart_app.rules.decision import (
    Alternative,
    BilledCode,
    Decision,
    EvidenceItem,
    ProgramDecision,
    Progress,
    Reason,
)
from smart_app.rules.errors import FactsError
from smart_app.rules.facts import PERFORMER_ROLES, Discharge, PatientFacts, TimeEntry
from smart_app.rules.schema import Code, Family, RuleSet
from smart_app.rules.timecount import addon_units, allocation, base_met, minutes_for_next_unit

# The program of the episodes (patient.episodes) that tell a first CoCM month from a later one.
COCM_EPISODE_PROGRAM = "cocm"


@dataclass(frozen=True)
class Policy:
    """How to choose among billable combinations that exclude each other.

    most_supported (default): the combination the documentation supports most fully, i.e. the
    most documented minutes behind billed codes, then the most documentation requirements met
    (the rule file's evidence list), then the higher national rate total.
    highest_rate: the higher national rate total first, then minutes.
    prefer: codes listed in `prefer` win (earlier first), then as most_supported.
    """

    strategy: Literal["most_supported", "highest_rate", "prefer"] = "most_supported"
    prefer: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Label for the output."""
        if self.strategy == "prefer":
            return "prefer:" + ",".join(self.prefer)
        return self.strategy


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class _Month:
    label: str
    first: dt.date
    last: dt.date

    def contains(self, day: dt.date) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True)
class _Option:
    """One billable way to code one family this month."""

    family: str
    codes: tuple[BilledCode, ...]
    minutes: int
    rate_total: float
    evidence: tuple[EvidenceItem, ...] = ()
    warnings: tuple[str, ...] = ()
    requirements: int = 0
    # Evidence the codes need that is not on file: the claim cannot be approved until it is recorded.
    gaps: tuple[str, ...] = ()

    def code_set(self) -> frozenset[str]:
        return frozenset(c.code for c in self.codes)


@dataclass
class _FamilyWork:
    """A family's options and blockers before the cross-family choice."""

    options: list[_Option] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    evidence: list[EvidenceItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    minutes_total: int = 0
    minutes_by_role: dict[str, int] = field(default_factory=dict)


def _resolve_month(month: str | dt.date | None, facts: PatientFacts,
                   minutes: Sequence[TimeEntry]) -> _Month:
    raw: str | dt.date | None = month or facts.month
    if raw is None:
        months = {f"{e.date.year:04d}-{e.date.month:02d}" for e in minutes}
        if len(months) != 1:
            raise FactsError("month", "no service month given and the time entries do not "
                                      "fall in exactly one month")
        raw = months.pop()
    if isinstance(raw, dt.date):
        year, mon = raw.year, raw.month
    else:
        try:
            year_s, mon_s = raw.split("-")
            year, mon = int(year_s), int(mon_s)
            if len(year_s) != 4 or len(mon_s) != 2 or not 1 <= mon <= 12:
                raise ValueError
        except ValueError:
            raise FactsError("month", f"'{raw}' is not a month in YYYY-MM form") from None
    last = calendar.monthrange(year, mon)[1]
    return _Month(f"{year:04d}-{mon:02d}", dt.date(year, mon, 1), dt.date(year, mon, last))


def _months_before(day: dt.date, months: int) -> dt.date:
    """The first day of the month `months` months before `day`'s month."""
    index = day.year * 12 + (day.month - 1) - months
    return dt.date(index // 12, index % 12 + 1, 1)


def _roles_phrase(roles: Iterable[str]) -> str:
    items = list(roles)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _business_days_after(day: dt.date, n: int) -> dt.date:
    # Saturdays and Sundays are skipped; holidays are not (a stricter, earlier deadline).
    out = day
    while n > 0:
        out += dt.timedelta(days=1)
        if out.weekday() < 5:
            n -= 1
    return out


class _Context:
    """Everything derived once from the facts for one evaluation."""

    def __init__(self, facts: PatientFacts, entries: Sequence[TimeEntry], rules: RuleSet,
                 month: _Month) -> None:
        self.facts = facts
        self.rules = rules
        self.month = month
        self.findings: list[str] = list(facts.findings)
        self.conditions: ConditionSummary = summarize(facts, rules.conditions, month.last)
        self.findings.extend(self.conditions.findings)
        self.entries = self._usable_entries(entries)

    def _usable_entries(self, entries: Sequence[TimeEntry]) -> list[tuple[int, TimeEntry]]:
        programs = {f.time_program for f in self.rules.families.values()}
        usable: list[tuple[int, TimeEntry]] = []
        for i, e in enumerate(entries):
            ref = f"time entry {e.id}" if e.id else f"time[{i}]"
            if e.program not in programs:
                self.findings.append(f"{ref}: unknown program '{e.program}'; not counted")
            elif e.performer not in PERFORMER_ROLES:
                self.findings.append(f"{ref}: unknown performer role '{e.performer}'; "
                                     "not counted")
            elif e.minutes <= 0:
                self.findings.append(f"{ref}: {e.minutes} minutes; not counted")
            elif not self.month.contains(e.date):
                self.findings.append(f"{ref}: dated {e.date.isoformat()}, outside "
                                     f"{self.month.label}; not counted")
            else:
                usable.append((i, e))
        # Chronological order decides which minutes sit behind the base code and which behind
        # each add-on unit, so the allocation is the same on every run.
        usable.sort(key=lambda pair: (pair[1].date, pair[1].id or "", pair[0]))
        return usable

    # -- consent -----------------------------------------------------------------------------
    def consent(self, family: Family) -> tuple[dt.date | None, str | None, str]:
        """(date from which consent holds, consent id, why not) for a family's programs."""
        return self.consent_to(family.consent_programs)

    def consent_to(self, programs: Sequence[str]) -> tuple[dt.date | None, str | None, str]:
        """(date from which consent holds, consent id, why not) for any of `programs`."""
        records = []
        for i, c in enumerate(self.facts.consents):
            if c.program not in programs:
                continue
            status = c.status.lower()
            if status == "entered-in-error":
                continue
            if c.date <= self.month.last:
                records.append((c.date, i, status, c.id))
        if not records:
            return None, None, "none on file"
        records.sort()
        if records[-1][2] != "active":
            return None, None, f"latest consent record is '{records[-1][2]}'"
        # Consent holds from the earliest active record after the last withdrawal.
        start = records[-1]
        for rec in reversed(records):
            if rec[2] != "active":
                break
            start = rec
        return start[0], start[3] or f"consents[{start[1]}]", ""


def _consent_findings(facts: PatientFacts) -> list[str]:
    out = []
    for i, c in enumerate(facts.consents):
        if c.status.lower() == "entered-in-error":
            out.append(f"consent {c.id or f'consents[{i}]'}: entered-in-error; ignored")
    return out


def _scale_matches(code: str, rules: RuleSet) -> str | None:
    wanted = code.strip().upper()
    for name, scale in rules.rating_scales.items():
        if wanted == name.upper() or wanted in {c.upper() for c in scale.loinc}:
            return name
    return None


# What an evidence check returns: (blocking reasons, evidence used).
Checked = tuple[list[Reason], list[EvidenceItem]]


class _Evidence:
    """Checks for the evidence vocabulary; each returns (blocking reasons, evidence used)."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx

    def check(self, name: str, family_key: str, family: Family, code_key: str,
              code: Code) -> Checked:
        # The rule schema admits only evidence names (schema.Evidence) that are methods here; tcm_* go elsewhere.
        method: Callable[[str, Family, str, Code], Checked] = getattr(self, name)
        return method(family_key, family, code_key, code)

    def consent(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        start, cid, why = self.ctx.consent(fam)
        if start is None:
            return [Reason(f"no consent on file for {fam.title} ({why})",
                           f"record the patient's consent to {fam.title}", "consent")], []
        return [], [EvidenceItem("consent", cid, start.isoformat())]

    def code_consent(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        start, cid, why = self.ctx.consent_to(code.consent_programs)
        if start is None:
            progs = " or ".join(p.upper() for p in code.consent_programs)
            return [Reason(f"no consent on file for {progs} services with {fam.title} ({why})",
                           f"record the patient's consent to {progs}", "consent")], []
        return [], [EvidenceItem("consent", cid, start.isoformat())]

    def initiating_visit(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        months = fam.initiating_visit_months or 12
        visit = self.ctx.facts.initiating_visit
        window = _months_before(self.ctx.month.first, months)
        if visit is None:
            return [Reason("no initiating visit on file",
                           f"record an initiating visit (E/M, AWV or IPPE) dated within the "
                           f"{months} months before {self.ctx.month.label}",
                           "initiating_visit")], []
        if visit > self.ctx.month.last:
            return [Reason(f"initiating visit {visit.isoformat()} is after the service month",
                           "bill this program from the month of the initiating visit",
                           "initiating_visit")], []
        if visit < window:
            return [Reason(f"initiating visit {visit.isoformat()} is more than {months} months "
                           f"before {self.ctx.month.label}",
                           "furnish and record a new initiating visit", "initiating_visit")], []
        return [], [EvidenceItem("initiating_visit", None, visit.isoformat())]

    def chronic_conditions(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        assert code.chronic_conditions is not None
        chronic = self.ctx.conditions.chronic()
        undetermined = self.ctx.conditions.undetermined()
        n, lo, hi = len(chronic), code.chronic_conditions.min, code.chronic_conditions.max
        items = [EvidenceItem("condition", c.ref, None, f"{c.code or '-'} chronic ({c.basis})")
                 for c in chronic]
        reasons: list[Reason] = []
        if lo is not None and n < lo:
            und = ", ".join(f"{c.ref} ({c.code or c.system or 'no code'})" for c in undetermined)
            if undetermined and n + len(undetermined) >= lo:
                reasons.append(Reason(
                    f"needs {lo} chronic conditions; {n} found, {len(undetermined)} undetermined"
                    f": {und}",
                    "a clinician attests whether the undetermined conditions are chronic", "undetermined"))
            else:
                more = f"; undetermined: {und}" if undetermined else ""
                reasons.append(Reason(f"needs {lo} chronic conditions; {n} found{more}",
                                      f"document {lo - n} more chronic condition(s) or attest "
                                      "chronicity", "evidence"))
        if hi is not None and n > hi:
            reasons.append(Reason(f"for {hi} or fewer chronic conditions; {n} found",
                                  "bill the level that matches the condition count", "evidence"))
        return reasons, items

    def high_risk_condition(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        flagged = [c for c in self.ctx.conditions.chronic() if c.high_risk]
        if not flagged:
            n = len(self.ctx.conditions.chronic())
            return [Reason(f"needs 1 chronic condition the clinician marked high-risk; 0 found "
                           f"({n} chronic on file)",
                           "a clinician records that the principal condition places the patient at "
                           "significant risk (high-risk)",
                           "evidence")], []
        return [], [EvidenceItem("condition", c.ref, None, f"{c.code or '-'} high-risk")
                    for c in flagged]

    def complexity_moderate_or_high(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        level = (self.ctx.facts.complexity or "").lower()
        if level not in ("moderate", "high"):
            found = level or "none documented"
            return [Reason(f"needs documented moderate or high complexity medical decision "
                           f"making; found: {found}",
                           "document moderate or high complexity medical decision making",
                           "evidence")], []
        return [], [EvidenceItem("complexity", None, None, level)]

    def behavioral_health_condition(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        found = self.ctx.conditions.behavioral()
        if found:
            return [], [EvidenceItem("condition", c.ref, None, f"{c.code} behavioral health")
                        for c in found]
        unknown = self.ctx.conditions.behavioral_unknown()
        if unknown:
            refs = ", ".join(c.ref for c in unknown)
            return [Reason(f"no behavioral-health diagnosis found; undetermined (no ICD-10-CM "
                           f"code): {refs}",
                           "add the ICD-10-CM code of the behavioral-health diagnosis",
                           "undetermined")], []
        return [Reason("no behavioral-health diagnosis (ICD-10-CM chapter F) on file",
                       "document the behavioral-health diagnosis being treated",
                       "evidence")], []

    def rating_scale_this_month(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        used = []
        for i, s in enumerate(self.ctx.facts.rating_scales):
            name = _scale_matches(s.code, self.ctx.rules)
            if name and self.ctx.month.contains(s.date):
                used.append(EvidenceItem("rating_scale", s.id or f"rating_scales[{i}]",
                                         s.date.isoformat(),
                                         f"{name} score {s.score}" if s.score is not None
                                         else name))
        if not used:
            return [Reason(f"no PHQ-9 or GAD-7 (or other validated rating scale) in "
                           f"{self.ctx.month.label}",
                           "administer and record a validated rating scale this month",
                           "rating_scale")], []
        return [], used

    def cocm_episode(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        # Always the CoCM episode, also for the APCM add-ons that mirror the CoCM codes (G0568, G0569).
        starts = sorted(e.start for e in self.ctx.facts.episodes
                        if e.program == COCM_EPISODE_PROGRAM and e.start <= self.ctx.month.last)
        if not starts:
            return [Reason("no CoCM episode start on file; cannot tell the initial month from a "
                           "subsequent month",
                           "record the date the CoCM episode of care began",
                           "undetermined")], []
        start = starts[-1]
        initial = start >= self.ctx.month.first
        item = EvidenceItem("episode", None, start.isoformat(), f"{COCM_EPISODE_PROGRAM} episode start")
        if code.episode_month == "initial" and not initial:
            return [Reason(f"for the first month of an episode; episode began "
                           f"{start.isoformat()}", "bill the subsequent-month code", "evidence")], []
        if code.episode_month == "subsequent" and initial:
            return [Reason(f"for months after the first; episode began {start.isoformat()}",
                           "bill the initial-month code", "evidence")], []
        return [], [item]

    def qmb_status(self, fk: str, fam: Family, ck: str, code: Code) -> Checked:
        qmb = self.ctx.facts.qmb
        if qmb is None:
            return [Reason("Qualified Medicare Beneficiary (QMB) status unknown",
                           "record whether the patient is a QMB, from the Medicare eligibility check",
                           "undetermined")], []
        if qmb != code.qmb:
            want = "a QMB" if code.qmb else "a patient who is not a QMB"
            return [Reason(f"for {want}", "bill the level that matches QMB status",
                           "evidence")], []
        return [], [EvidenceItem("qmb", None, None, str(qmb).lower())]


def _effective(code: Code, month: _Month) -> Reason | None:
    eff = code.effective
    if eff.start > month.last or (eff.end is not None and eff.end < month.first):
        end = eff.end.isoformat() if eff.end else "open"
        return Reason(f"not effective in {month.label} ({eff.start.isoformat()} to {end})",
                      "none: the code is not payable this month", "effective")
    return None


def _merge_reasons(per_path: list[list[Reason]]) -> list[Reason]:
    """Keep every blocker; one shared by every path is stated once, without a code."""
    if not per_path:
        return []
    common = set.intersection(*[{(r.reason, r.lift, r.kind) for r in rs} for rs in per_path])
    out: list[Reason] = []
    seen: set[tuple[str | None, str, str]] = set()
    for rs in per_path:
        for r in rs:
            shared = (r.reason, r.lift, r.kind) in common and len(per_path) > 1
            item = Reason(r.reason, r.lift, r.kind, None if shared else r.code)
            key = (item.code, item.reason, item.kind)
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out


def _rate(code: Code) -> float:
    return code.rate.amount or 0.0


class _Evaluator:
    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.checks = _Evidence(ctx)

    def evidence_for(self, fk: str, fam: Family, ck: str,
                     code: Code) -> tuple[list[Reason], list[EvidenceItem]]:
        reasons: list[Reason] = []
        items: list[EvidenceItem] = []
        eff = _effective(code, self.ctx.month)
        if eff:
            reasons.append(eff)
        for name in code.evidence:
            if name.startswith("tcm_"):
                continue
            rs, its = self.checks.check(name, fk, fam, ck, code)
            reasons.extend(Reason(r.reason, r.lift, r.kind, ck) for r in rs)
            items.extend(its)
        return reasons, items

    def family_entries(self, fam: Family) -> list[tuple[int, TimeEntry]]:
        return [(i, e) for i, e in self.ctx.entries if e.program == fam.time_program]

    # -- time-based families -----------------------------------------------------------------
    def time_family(self, fk: str, fam: Family) -> _FamilyWork:
        work = _FamilyWork()
        entries = self.family_entries(fam)
        consent_start, _, _ = self.ctx.consent(fam) if fam.consent_programs else (None, None, "")
        if consent_start is not None:
            early = [(i, e) for i, e in entries if e.date < consent_start]
            if early:
                total = sum(e.minutes for _, e in early)
                work.warnings.append(f"{total} minutes dated before consent "
                                     f"({consent_start.isoformat()}) are not counted")
                entries = [(i, e) for i, e in entries if e.date >= consent_start]
        for _, e in entries:
            work.minutes_total += e.minutes
            work.minutes_by_role[e.performer] = work.minutes_by_role.get(e.performer, 0) + e.minutes
        counted_anywhere = {r for c in fam.codes.values() for r in c.counted_roles}
        for role, mins in sorted(work.minutes_by_role.items()):
            if role not in counted_anywhere:
                work.warnings.append(f"{mins} minutes by {role} do not count toward any "
                                     f"{fam.title} code")
        per_path: list[list[Reason]] = []
        for ck, code in fam.codes.items():
            if code.base_codes:
                continue
            option, reasons = self.time_path(fk, fam, ck, code, entries, work)
            if option is not None:
                work.options.append(option)
            per_path.append(reasons)
        if not work.options:
            work.reasons = _merge_reasons(per_path)
        return work

    def time_path(self, fk: str, fam: Family, ck: str, base: Code,
                  entries: list[tuple[int, TimeEntry]],
                  work: _FamilyWork) -> tuple[_Option | None, list[Reason]]:
        counted = [(i, e) for i, e in entries if e.performer in base.counted_roles]
        minutes = sum(e.minutes for _, e in counted)
        reasons, evidence = self.evidence_for(fk, fam, ck, base)
        roles = _roles_phrase(base.counted_roles)
        need = base.time.min_minutes or 0
        if not base_met(minutes, base):
            reasons.append(Reason(f"{minutes} of {need} minutes of {roles} time this month",
                                  f"{need - minutes} more minutes of {roles} time", "minutes",
                                  ck))
            work.progress.append(Progress(ck, minutes, need))
        if reasons:
            return None, reasons
        addons = [(ak, a) for ak, a in fam.codes.items() if ck in a.base_codes]
        addon_key, addon = addons[0] if addons else (None, None)
        units = 0
        warnings: list[str] = []
        if addon is not None and addon_key is not None:
            add_reasons, _ = self.evidence_for(fk, fam, addon_key, addon)
            if add_reasons:
                warnings.extend(r.text() for r in add_reasons)
            else:
                units = addon_units(minutes, base, addon)
                nxt = minutes_for_next_unit(minutes, base, addon)
                if nxt is None:
                    work.progress.append(Progress(addon_key, minutes, minutes, addon.max_units, at_cap=True))
                else:
                    work.progress.append(Progress(addon_key, minutes, minutes + nxt, units + 1))
        alloc = allocation(minutes, base, addon, units)
        codes = [self.billed(fk, ck, base, 1, alloc[0], counted, 0)]
        if addon is not None and addon_key is not None and units:
            codes.append(self.billed(fk, addon_key, addon, units, sum(alloc[1:]), counted,
                                     alloc[0]))
        rate = _rate(base) + units * (_rate(addon) if addon else 0.0)
        return _Option(fk, tuple(codes), sum(alloc), rate, tuple(evidence),
                       tuple(warnings), len(set(base.evidence))), []

    def billed(self, fk: str, ck: str, code: Code, units: int, minutes: int,
               counted: list[tuple[int, TimeEntry]], skip: int) -> BilledCode:
        """A billed code with the chronological slice of minutes [skip, skip+minutes)."""
        by_role: dict[str, int] = {}
        ids: list[str] = []
        pos = 0
        for i, e in counted:
            lo, hi = max(pos, skip), min(pos + e.minutes, skip + minutes)
            if hi > lo:
                by_role[e.performer] = by_role.get(e.performer, 0) + hi - lo
                ids.append(e.id or f"time[{i}]")
            pos += e.minutes
        return BilledCode(ck, units, fk, code.descriptor, minutes, tuple(sorted(by_role.items())),
                          tuple(ids), code.rate.amount, code.rate.year)

    # -- TCM --------------------------------------------------------------------------------
    def tcm_checks(self, d: Discharge, code: Code) -> list[Reason]:
        assert code.tcm is not None
        out: list[Reason] = []
        deadline = _business_days_after(d.date, 2)
        contact_ok = d.contact_date is not None and d.date <= d.contact_date <= deadline
        attempts = [a for a in d.contact_attempts if d.date <= a <= deadline]
        if not contact_ok and len(attempts) < 2:
            got = d.contact_date.isoformat() if d.contact_date else "none"
            out.append(Reason(f"interactive contact by {deadline.isoformat()} (2 business days "
                              f"after discharge) not on file (contact: {got})",
                              "none for this discharge: the contact window has passed"
                              if d.contact_date else "record the interactive contact, or 2+ "
                              "documented timely attempts", "evidence"))
        days = code.tcm.face_to_face_days
        if d.face_to_face_date is None:
            out.append(Reason(f"no face-to-face visit on file (needed within {days} days)",
                              "record the face-to-face visit", "evidence"))
        else:
            gap = (d.face_to_face_date - d.date).days
            if not 1 <= gap <= days:
                out.append(Reason(f"face-to-face visit on day {gap} after discharge; needs days "
                                  f"1-{days}", "none for this code", "evidence"))
            med = d.medication_reconciliation_date
            if med is not None and med > d.face_to_face_date:
                out.append(Reason("medication reconciliation after the face-to-face visit",
                                  "none: it must be done no later than the visit", "evidence"))
        level = (d.complexity or "").lower()
        if level not in code.tcm.mdm:
            out.append(Reason(f"needs {' or '.join(code.tcm.mdm)} complexity medical decision "
                              f"making; found: {level or 'none documented'}",
                              "document the medical decision making of the TCM service",
                              "evidence"))
        return out

    def tcm_family(self, fk: str, fam: Family) -> _FamilyWork:
        work = _FamilyWork()
        for _, e in self.family_entries(fam):
            work.minutes_total += e.minutes
            work.minutes_by_role[e.performer] = work.minutes_by_role.get(e.performer, 0) + e.minutes
        discharges = sorted(enumerate(self.ctx.facts.discharges), key=lambda p: (p[1].date, p[0]))
        qualifying: list[Discharge] = []
        per_path: list[list[Reason]] = []
        for idx, d in discharges:
            ref = d.id or f"discharges[{idx}]"
            passing = [(ck, c) for ck, c in fam.codes.items() if not self.tcm_checks(d, c)]
            earlier = [q for q in qualifying if 0 <= (d.date - q.date).days < 30]
            if passing:
                qualifying.append(d)
            in_month = d.face_to_face_date is not None and self.ctx.month.contains(
                d.face_to_face_date)
            pending = d.face_to_face_date is None and (
                self.ctx.month.first - dt.timedelta(days=30) <= d.date <= self.ctx.month.last)
            if not (in_month or pending):
                continue
            for ck, code in fam.codes.items():
                reasons = [Reason(r.reason, r.lift, r.kind, ck) for r in self.tcm_checks(d, code)]
                eff = _effective(code, self.ctx.month)
                if eff:
                    reasons.append(Reason(eff.reason, eff.lift, eff.kind, ck))
                if earlier:
                    reasons.append(Reason(f"discharge {ref} is within 30 days of a TCM-qualifying "
                                          f"discharge on {earlier[0].date.isoformat()}",
                                          "none: one TCM per 30 days", "exclusion", ck))
                reasons = [Reason(f"discharge {ref}: {r.reason}", r.lift, r.kind, r.code)
                           for r in reasons]
                if reasons:
                    per_path.append(reasons)
                    continue
                evidence = (EvidenceItem("discharge", ref, d.date.isoformat(),
                                         f"contact {d.contact_date}, face-to-face "
                                         f"{d.face_to_face_date}, MDM {d.complexity}"),)
                # Required, but no EHR exposes it as data: the claim waits until the care team records it.
                gaps = () if d.medication_reconciliation_date else (
                    f"medication reconciliation for the discharge of {d.date.isoformat()} is not on file "
                    "(it must be done no later than the face-to-face visit)",)
                billed = BilledCode(ck, 1, fk, code.descriptor, 0, (), (), code.rate.amount,
                                    code.rate.year)
                work.options.append(_Option(fk, (billed,), 0, _rate(code), evidence, (),
                                            len(set(code.evidence)), gaps))
        if not work.options:
            work.reasons = _merge_reasons(per_path) or [
                Reason(f"no discharge with a face-to-face visit in {self.ctx.month.label}",
                       "record the discharge and its TCM steps", "evidence")]
        return work

    # -- monthly, not time-based (APCM and its add-ons) -------------------------------------
    def monthly_family(self, fk: str, fam: Family) -> _FamilyWork:
        work = _FamilyWork()
        for _, e in self.family_entries(fam):
            work.minutes_total += e.minutes
            work.minutes_by_role[e.performer] = work.minutes_by_role.get(e.performer, 0) + e.minutes
        # An add-on whose own evidence holds; it is billed only beside a billable base code.
        addons: dict[str, tuple[Code, list[EvidenceItem]]] = {}
        for ak, addon in fam.codes.items():
            if addon.base_codes:
                reasons, evidence = self.evidence_for(fk, fam, ak, addon)
                if not reasons:
                    addons[ak] = (addon, evidence)
        per_path: list[list[Reason]] = []
        for ck, code in fam.codes.items():
            if code.base_codes:
                continue
            reasons, evidence = self.evidence_for(fk, fam, ck, code)
            if reasons:
                per_path.append(reasons)
                continue
            billed = BilledCode(ck, 1, fk, code.descriptor, 0, (), (), code.rate.amount,
                                code.rate.year)
            warnings: tuple[str, ...] = ()
            if code.chronic_conditions and code.chronic_conditions.max is not None and (
                    self.ctx.conditions.undetermined()):
                warnings = (f"{ck}: some conditions are undetermined; a higher level may apply "
                            "once they are attested",)
            requirements = len(set(code.evidence))
            work.options.append(_Option(fk, (billed,), 0, _rate(code), tuple(evidence), warnings,
                                        requirements))
            # The base code alone stays an option: an add-on's exclusions may rule it out when
            # another program's codes are picked.
            for ak, (addon, addon_evidence) in addons.items():
                if ck not in addon.base_codes:
                    continue
                extra = BilledCode(ak, 1, fk, addon.descriptor, 0, (), (), addon.rate.amount,
                                   addon.rate.year)
                work.options.append(_Option(fk, (billed, extra), 0, _rate(code) + _rate(addon),
                                            tuple(dict.fromkeys([*evidence, *addon_evidence])),
                                            warnings, requirements))
        if not work.options:
            work.reasons = _merge_reasons(per_path)
            for ak, (addon, _) in addons.items():
                bases = _roles_phrase(addon.base_codes)
                work.reasons.append(Reason(
                    f"an add-on, billed only with {bases} ({fam.title}) by the same practitioner in "
                    "the same month, and none of those is billable",
                    f"meet the requirements of {bases} above", "evidence", ak))
        return work


# Built once per rule set (a rule set is immutable); it was a tenth of a month-end rollup's time when it was
# rebuilt twice for every patient. The weak reference tells a live entry from a reused id().
_EXCLUSIONS: dict[int, tuple[weakref.ref[RuleSet], dict[str, dict[str, tuple[str, str]]]]] = {}


def _exclusion_map(rules: RuleSet) -> dict[str, dict[str, tuple[str, str]]]:
    """code -> {excluded code: (scope, note)}, made symmetric. Shared between calls: do not change it."""
    cached = _EXCLUSIONS.get(id(rules))
    if cached is not None and cached[0]() is rules:
        return cached[1]
    out = _build_exclusion_map(rules)
    _EXCLUSIONS[id(rules)] = (weakref.ref(rules), out)
    return out


def _build_exclusion_map(rules: RuleSet) -> dict[str, dict[str, tuple[str, str]]]:
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for fam in rules.families.values():
        for ck, code in fam.codes.items():
            for exc in code.exclusions:
                note = exc.note or exc.conservative_choice or ""
                for other in exc.codes:
                    out.setdefault(ck, {})[other] = (exc.scope, note)
                    out.setdefault(other, {}).setdefault(ck, (exc.scope, note))
    return out


def _conflicts(a: frozenset[str], b: frozenset[str],
               excl: dict[str, dict[str, tuple[str, str]]]) -> list[tuple[str, str]]:
    return [(x, y) for x in sorted(a) for y in sorted(b) if y in excl.get(x, {})]


def _score(policy: Policy, chosen: Sequence[_Option]) -> tuple[float, ...]:
    minutes = float(sum(o.minutes for o in chosen))
    # More documentation requirements met behind the same minutes means fuller documentation
    # (documented complexity makes 99487 better supported than 99490 + 2x99439 at 60 minutes).
    evidence = float(sum(o.requirements for o in chosen))
    rate = round(sum(o.rate_total for o in chosen), 2)
    units = float(sum(c.units for o in chosen for c in o.codes))
    if policy.strategy == "highest_rate":
        return (rate, minutes, evidence, units)
    base = (minutes, evidence, rate, units)
    if policy.strategy == "prefer":
        codes = {c.code for o in chosen for c in o.codes}
        return tuple(1.0 if p in codes else 0.0 for p in policy.prefer) + base
    return base


def _choose(work: dict[str, _FamilyWork], rules: RuleSet,
            policy: Policy) -> dict[str, int | None]:
    """Pick one option (or none) per family: no exclusions, no shared minutes, best score."""
    excl = _exclusion_map(rules)
    keys = list(work)
    choices = [[None, *range(len(work[k].options))] for k in keys]
    best: tuple[tuple[float, ...], tuple[int, ...]] | None = None
    best_pick: dict[str, int | None] = {k: None for k in keys}
    for combo in itertools.product(*choices):
        chosen = [(k, work[k].options[i]) for k, i in zip(keys, combo, strict=True)
                  if i is not None]
        ok = True
        for (ka, a), (kb, b) in itertools.combinations(chosen, 2):
            same_minutes = (rules.families[ka].time_program == rules.families[kb].time_program)
            if same_minutes or _conflicts(a.code_set(), b.code_set(), excl):
                ok = False
                break
        if not ok:
            continue
        # Ties go to the earlier family and the earlier option in the rule file (None last).
        order = tuple(len(work[k].options) if i is None else i
                      for k, i in zip(keys, combo, strict=True))
        key = (_score(policy, [o for _, o in chosen]), tuple(-x for x in order))
        if best is None or key > best:
            best = key
            best_pick = dict(zip(keys, combo, strict=True))
    return best_pick


def evaluate(facts: PatientFacts, minutes: Sequence[TimeEntry], rule_set: RuleSet, *,
             month: str | dt.date | None = None, policy: Policy = DEFAULT_POLICY) -> Decision:
    """Decide the month's billable codes, units, minutes, evidence and blockers. No I/O."""
    m = _resolve_month(month, facts, minutes)
    eff = rule_set.effective
    if m.last < eff.start or (eff.end is not None and m.first > eff.end):
        raise FactsError("month", f"{m.label} is outside the rule set's effective period "
                                  f"({rule_set.payer} {rule_set.year})")
    ctx = _Context(facts, minutes, rule_set, m)
    ctx.findings.extend(_consent_findings(facts))
    ev = _Evaluator(ctx)
    work: dict[str, _FamilyWork] = {}
    for fk, fam in rule_set.families.items():
        if any(c.per == "discharge" for c in fam.codes.values()):
            work[fk] = ev.tcm_family(fk, fam)
        elif fam.time_based:
            work[fk] = ev.time_family(fk, fam)
        else:
            work[fk] = ev.monthly_family(fk, fam)
    pick = _choose(work, rule_set, policy)
    excl = _exclusion_map(rule_set)
    chosen_codes = {c.code: k for k, i in pick.items() if i is not None
                    for c in work[k].options[i].codes}
    programs = [_program_decision(fk, rule_set.families[fk], work[fk], pick[fk], chosen_codes,
                                  excl, policy, ctx) for fk in rule_set.families]
    findings = tuple(dict.fromkeys(ctx.findings))
    return Decision(m.label, rule_set.payer, rule_set.year, policy.name, tuple(programs),
                    findings)


def _care_plan_on_file(ctx: _Context) -> bool:
    return any(p.status.lower() == "active" and p.date <= ctx.month.last
               for p in ctx.facts.care_plans)


def _program_decision(fk: str, fam: Family, work: _FamilyWork, picked: int | None,
                      chosen_codes: dict[str, str],
                      excl: dict[str, dict[str, tuple[str, str]]], policy: Policy,
                      ctx: _Context) -> ProgramDecision:
    alternatives: list[Alternative] = []
    reasons = list(work.reasons)
    warnings = list(work.warnings)
    evidence: list[EvidenceItem] = []
    codes: tuple[BilledCode, ...] = ()
    gaps: tuple[str, ...] = ()
    for i, opt in enumerate(work.options):
        blockers = sorted({(y, chosen_codes[y]) for x in opt.code_set()
                           for y in excl.get(x, {}) if y in chosen_codes
                           and chosen_codes[y] != fk})
        if i == picked:
            note = f"picked by policy {policy.name}"
        elif blockers:
            note = "excluded by " + ", ".join(f"{c} ({p})" for c, p in blockers)
        else:
            note = f"a lower choice under policy {policy.name}"
        alternatives.append(Alternative(tuple((c.code, c.units) for c in opt.codes),
                                        opt.minutes, opt.rate_total, i == picked, note))
    if picked is not None:
        opt = work.options[picked]
        codes = opt.codes
        evidence = list(opt.evidence)
        warnings.extend(opt.warnings)
        gaps = opt.gaps
        if "care_plan" in fam.warn_if_missing and not _care_plan_on_file(ctx):
            warnings.append("no active care plan on file (required for this program; "
                            "not a blocking reason here)")
        scoped = sorted({other for c in codes for other, (scope, _) in excl.get(c.code, {}).items()
                         if scope == "any-practitioner"})
        if scoped:
            warnings.append("only one practitioner may bill these codes this month: confirm no "
                            "other practitioner billed " + ", ".join(scoped))
    elif work.options:
        # Billable on its own, but every option collides with codes picked for other programs.
        for alt in alternatives:
            reasons.append(Reason(f"billable as {'+'.join(c for c, _ in alt.codes)} but "
                                  f"{alt.note}",
                                  "bill this program instead only if the organization's policy "
                                  "or the other program's documentation changes", "exclusion"))
    return ProgramDecision(
        program=fk, title=fam.title, codes=codes, minutes_total=work.minutes_total,
        minutes_by_role=tuple(sorted(work.minutes_by_role.items())), evidence=tuple(evidence),
        reasons=tuple(reasons), warnings=tuple(dict.fromkeys(warnings)),
        alternatives=tuple(alternatives), progress=tuple(dict.fromkeys(work.progress)), gaps=gaps)
