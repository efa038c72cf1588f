"""The care-team panel: every enrolled patient of one organization-month, who is closest to a
billing threshold, and the month's estimated revenue, as the rules' evaluator decides it. Read-only.

Definitions (what the panel page and its CSV mean):

* **Enrolled this month**: a patient of the organization with a `month_status` row for the month
  whose `eligible_programs` is not empty, or with at least one effective time entry in the month
  (not a void, not amended or voided away). Patients of other organizations never appear.
* **Rows**: one per patient and program (the ledger's time programs: ccm, pcm, bhi, cocm, tcm,
  apcm). A patient gets a row for each program with effective minutes this month and for each
  program the snapshot lists as eligible (a rule-set family such as `complex_ccm` maps to the
  time program whose minutes it uses, here `ccm`).
* **Minutes**: effective minutes of the month from the ledger, summed in one aggregated query
  for the whole organization-month (GROUP BY patient, program, role). `minutes` is every role's
  time; `counted_minutes` is what the evaluator counted: the minutes behind the billed codes, or
  toward the nearest threshold (minutes before consent, or of a role a code does not count, are not).
* **One decision**: codes, units, counted minutes and the next threshold are the rules' evaluator's
  (`rules.evaluate` summarised by `rules.standing`), never recomputed here. The in-chart page keeps
  its Decision in `month_status`, and its summary with the ledger state it saw in `month_status.panel`
  (`ledger_fingerprint`: rows written and counting minutes); while the ledger still matches, that
  summary is used. Otherwise the patient is
  evaluated here as the rollup would: the facts last read from the EHR (`facts_cache`), the app's own
  consents, attestations and scales, and the month's entries (the page route keeps those decisions for
  its next load). Without facts nothing is decided (the rollup cannot bill the patient either): the
  minutes are shown, with no codes, no threshold and no revenue.
* **Eligibility**: `eligible`: some code of the program is billed, or lacks only minutes;
  `not eligible`: something else (consent, a diagnosis, an exclusion) blocks every code (the minutes
  are still shown, without revenue); `not checked`: no facts were read from the EHR for the patient-month
  (neither a chart opened nor a rollup read them).
  "As of" is the time of the last in-chart evaluation.
* **Status**: `billable` (the evaluator bills a code); `close` (not billable, some minutes
  recorded, and at most `close_within` minutes short of the nearest threshold); `in progress`
  (minutes recorded); `not started` (no minutes); `not time-based` (TCM, APCM: no minute threshold).
* **Sort**: close rows first (fewest minutes needed first), then billable rows (closest next
  add-on unit first, those at the cap last), then in progress, not started and not time-based,
  each by minutes needed; ties by patient name (case-insensitive), patient id, then program.
* **Enrollment** (`ledger.enrollment`): each row's program status for the patient: enrolled (a consent in
  force, from the app or the EHR), withdrawn, declined, not a candidate, offered, or none; "" for TCM, which takes
  no enrollment. The EHR's consents are those of the facts last read (kept with the page's summary in
  `month_status.panel`, or the rollup's `facts_cache`); the app's offers, declines and consents are read live.
* **Could be offered** (outreach): patients of the month (a `month_status` row) with a program whose only gaps are
  consent (and minutes) in the kept decision, no consent in force for any program (conservative: a second program
  is the care team's call in the chart, as some exclude each other), and an enrollment status for it of none or
  offered. Declined, not a candidate and withdrawn (the patient chose to stop) are not listed. Filtered by program,
  care manager and enrollment like the rows.
* **Filters**: `program` (a time program key), `care_manager` (the `patients.care_manager`
  reference) and `enrollment` (an enrollment status). Totals follow the filters; the lists of programs and care
  managers do not.
* **Revenue estimates** (labelled by `Pricing.label`, e.g. "national estimate, non-facility,
  conversion factor $33.4009; not a payment amount"): each code's estimate comes from
  `smart_app.rules.rates.estimate`, national or, when the organization names its Medicare
  locality's GPCIs, the locality estimate, and the label says which (the superbill's pricing).
  *captured* sums the estimates of the codes billed now (times their units); *within reach* sums, over rows that are
  close or billable and at most `close_within` minutes from their next threshold while the month
  still has days left (today counts; none once the month has ended in the organization's
  timezone), the rate of that next code or unit. Rows that are not `eligible` are never within reach.
  A code with no figure is not guessed: it adds nothing and is counted as unknown.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from smart_app.billing.facts_source import cached_facts_many
from smart_app.billing.rollup import month_entries, with_app_records_needed
from smart_app.ledger.care_plans import CARE_PLAN_PROGRAMS
from smart_app.ledger.directory import save_month_status
from smart_app.ledger.enrollment import ENROLLMENT_PROGRAMS, Mark, app_marks_for, ehr_consent_marks, program_status
from smart_app.ledger.facts_merge import time_entries, with_app_records
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.months import Month
from smart_app.ledger.queries import counting, ledger_fingerprint
from smart_app.ledger.records import CarePlanVersionRow, MonthStatusRow, PatientRow
from smart_app.ledger.values import PROGRAMS
from smart_app.rules.decision import Decision, ProgramDecision
from smart_app.rules.evaluate import evaluate
from smart_app.rules.facts import Consent
from smart_app.rules.rates import Pricing
from smart_app.rules.schema import RuleSet
from smart_app.rules.standing import Standing, path_kinds, standings
from smart_app.statuses import CarePlanStatus, EnrollmentStatus

DEFAULT_CLOSE_WITHIN = 10

CLOSE, BILLABLE, IN_PROGRESS, NOT_STARTED, NOT_TIMED = (
    "close", "billable", "in progress", "not started", "not time-based")
STATUSES = (CLOSE, BILLABLE, IN_PROGRESS, NOT_STARTED, NOT_TIMED)
ELIGIBLE, NOT_ELIGIBLE, NOT_CHECKED = "eligible", "not eligible", "not checked"

_ZERO = Decimal("0.00")
# CSV cells starting with one of these are read as formulas by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class PanelRow:
    """One patient and program this month."""

    patient_id: str
    name: str
    mrn: str | None
    care_manager_name: str | None
    program: str
    minutes: int
    next_code: str | None
    next_threshold: int | None
    minutes_needed: int | None
    status: str
    eligibility_as_of: dt.datetime | None
    eligibility: str = NOT_CHECKED
    care_manager: str | None = None
    counted_minutes: int = 0
    codes_met: tuple[tuple[str, int], ...] = ()
    captured: Decimal = _ZERO
    captured_unknown: int = 0
    within_reach: bool = False
    reach_rate: Decimal | None = None
    # The next review of the care plan established in the app (programs that need one), and whether it is due.
    care_plan_review: dt.date | None = None
    care_plan_review_due: bool = False
    # The patient's enrollment status in the program ("" for a program without enrollment: TCM).
    enrollment: str = ""


@dataclass(frozen=True)
class OutreachRow:
    """A patient who could be offered a program: only consent (and minutes) stands between them and billing."""

    patient_id: str
    name: str
    mrn: str | None
    care_manager_name: str | None
    program: str
    enrollment: str  # none | offered
    on: dt.date | None = None  # when it was offered


@dataclass(frozen=True)
class Totals:
    """The (filtered) panel's counts and revenue estimates."""

    rows: int
    patients: int
    by_status: tuple[tuple[str, int], ...]
    days_left: int
    captured: Decimal
    captured_unknown: int
    within_reach: Decimal
    within_reach_rows: int
    within_reach_unknown: int
    not_checked: int
    not_eligible: int
    label: str

    def count(self, status: str) -> int:
        """Rows with a status."""
        return dict(self.by_status).get(status, 0)


@dataclass(frozen=True)
class Panel:
    """The panel of one organization-month: sorted rows, totals, and the filters' choices."""

    rows: tuple[PanelRow, ...]
    totals: Totals
    care_managers: tuple[tuple[str, str], ...]  # (reference, display name), by name
    programs: tuple[str, ...]
    month: str = ""
    close_within: int = DEFAULT_CLOSE_WITHIN
    outreach: tuple[OutreachRow, ...] = ()


@dataclass(frozen=True)
class _Assessment:
    status: str
    counted: int
    next_code: str | None = None
    next_threshold: int | None = None
    needed: int | None = None
    reach_rate: Decimal | None = None
    codes_met: tuple[tuple[str, int], ...] = ()
    captured: Decimal = _ZERO
    captured_unknown: int = 0


def _program_order(rule_set: RuleSet) -> tuple[str, ...]:
    known = [fam.time_program for fam in rule_set.families.values()]
    return tuple(dict.fromkeys([*known, *PROGRAMS]))


_GROUP = {status: i for i, status in enumerate(STATUSES)}
_NEVER = 1 << 30  # sorts rows with no next threshold after every number of minutes
# Patients whose kept decision is out of date are evaluated again in batches of this size.
_BATCH = 500


# Reason kinds that leave a program to consent alone: what outreach can fix.
_CONSENT_ONLY = frozenset({"consent", "minutes"})


def _consent_only(program: ProgramDecision) -> bool:
    return not program.codes and any("consent" in kinds and kinds <= _CONSENT_ONLY
                                     for kinds in path_kinds(program).values())


def snapshot_json(decision: Decision, rule_set: RuleSet, ledger: str,
                  consents: tuple[Consent, ...] = ()) -> dict[str, Any]:
    """What `month_status.panel` keeps: the panel's summary of the Decision, with the ledger state it saw, the
    programs only consent keeps from billing (outreach), and the EHR's consents as read (`consents`)."""
    offer = {rule_set.families[p.program].time_program for p in decision.programs
             if p.program in rule_set.families and _consent_only(p)}
    return {"ledger": ledger,
            "standings": [s.to_json() for s in standings(decision, rule_set).values() if s.relevant],
            "consent_only": sorted(offer),
            "consents": [[c.program, c.status, c.date.isoformat()] for c in consents]}


def _kept_consents(kept: Any) -> list[Consent] | None:
    """The EHR's consents a kept summary holds (None for a summary kept before they were)."""
    if not isinstance(kept, dict) or "consents" not in kept:
        return None
    return [Consent(str(p), str(status), dt.date.fromisoformat(str(day))) for p, status, day in kept["consents"]]


def _decide_stale(session: Session, organization_id: str, month: str, rule_set: RuleSet, timezone: str,
                  stale: list[str], keep: dict[str, tuple[dict[str, Any], dict[str, Any]]] | None,
                  states: dict[str, str],
                  ehr_consents: dict[str, list[Consent]] | None = None) -> tuple[dict[str, dict[str, Standing]],
                                                                                 set[str]]:
    """Evaluate patients whose kept decision does not match the ledger: the rollup's facts, app records, entries.

    Returns each patient's standings and the patients with no facts read from the EHR: nothing can be decided for
    those (the rollup cannot bill them either), so they are shown as not checked. With `keep`, each fresh
    decision is put there (patient -> (Decision JSON, the panel's summary)) for the caller to store; with
    `ehr_consents`, each patient's consents from the EHR's facts.
    """
    out: dict[str, dict[str, Standing]] = {}
    unread: set[str] = set()
    for start in range(0, len(stale), _BATCH):
        batch = stale[start:start + _BATCH]
        facts_of = cached_facts_many(session, organization_id, batch, month)
        if not facts_of:
            unread.update(batch)
            continue
        own = with_app_records_needed(session, organization_id, list(facts_of))
        entries_of = month_entries(session, organization_id, list(facts_of), month)
        for patient_id in batch:
            found = facts_of.get(patient_id)
            if found is None:
                unread.add(patient_id)
                continue
            facts = found[0]
            if ehr_consents is not None:
                ehr_consents[patient_id] = list(facts.consents)
            if patient_id in own:
                facts = with_app_records(session, organization_id, patient_id, timezone, facts)
            entries = time_entries(entries_of.get(patient_id, ()), timezone)
            decision = evaluate(facts, entries, rule_set, month=month)
            out[patient_id] = standings(decision, rule_set)
            if keep is not None:
                keep[patient_id] = (decision.to_json(), snapshot_json(decision, rule_set, states[patient_id],
                                                                      found[0].consents))
    return out, unread


def keep_decisions(session: Session, organization_id: str, month: str,
                   fresh: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Store decisions the panel made afresh, so its next load reads them (as a page view would have kept them)."""
    for patient_id, (decision, snapshot) in sorted(fresh.items()):
        eligible = [p["program"] for p in decision["programs"]
                    if p["codes"] or (p["reasons"] and all(r["kind"] == "minutes" for r in p["reasons"]))]
        existing = session.get(MonthStatusRow, (organization_id, patient_id, month))
        save_month_status(session, organization_id, patient_id, month,
                          eligible_programs=list(existing.eligible_programs) if existing else eligible,
                          decision=decision, panel=snapshot)


def _assess(standing: Standing | None, minutes: int, close_within: int,
            pricing: Pricing) -> _Assessment:
    """The panel's status, next threshold and estimates of one patient-program, from the evaluator's standing."""
    if standing is None:
        # The program has no family in the rule set: minutes shown, nothing to decide.
        return _Assessment(IN_PROGRESS if minutes else NOT_STARTED, 0)
    if not standing.time_based:
        captured, unknown = _priced(standing.codes, pricing)
        return _Assessment(NOT_TIMED, standing.counted, codes_met=standing.codes, captured=captured,
                           captured_unknown=unknown)
    reach = pricing.unit(standing.next_code).amount if standing.next_code else None
    if standing.codes:
        captured, unknown = _priced(standing.codes, pricing)
        return _Assessment(BILLABLE, standing.counted, standing.next_code, standing.next_target, standing.needed,
                           reach, standing.codes, captured, unknown)
    need = standing.needed
    if not minutes:
        status = NOT_STARTED
    elif need is not None and need <= close_within:
        status = CLOSE
    else:
        status = IN_PROGRESS
    return _Assessment(status, standing.counted, standing.next_code, standing.next_target, need, reach)


def _priced(codes: tuple[tuple[str, int], ...], pricing: Pricing) -> tuple[Decimal, int]:
    """The estimate of billed codes (the superbill's: one unit's estimate times units) and how many lack one."""
    total, unknown = _ZERO, 0
    for code, units in codes:
        amount = pricing.unit(code).times(units)
        if amount is None:
            unknown += units
        else:
            total += amount
    return total, unknown


def panel_rows(session: Session, organization_id: str, month: str, rule_set: RuleSet, *, today: dt.date,
               timezone: str = "UTC", close_within: int = DEFAULT_CLOSE_WITHIN, program: str | None = None,
               care_manager: str | None = None, pricing: Pricing | None = None, keep: bool = False,
               enrollment: str | None = None) -> Panel:
    """The panel of an organization-month (see the module docstring for every definition).

    `pricing` prices the estimates (default: national figures of `rule_set`); `timezone` is the organization's,
    which dates its entries. Seven statements for the month, plus a few per batch of patients whose kept
    decision no longer matches the ledger; with `keep`, the decisions made afresh are stored for the next load.
    `enrollment` keeps the rows whose enrollment status is that one.
    """
    Month.parse(month)
    if close_within < 0:
        raise ValueError("close_within must be zero or more")
    te, ms, pr = TimeEntryRow, MonthStatusRow, PatientRow
    minutes_by: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for patient_id, prog, role, total in session.execute(
            select(te.patient_id, te.program, te.role, func.sum(te.minutes))
            .where(te.organization_id == organization_id, te.month == month, counting())
            .group_by(te.patient_id, te.program, te.role)):
        minutes_by[patient_id][prog][role] = int(total or 0)
    rows_written: dict[str, int] = {patient_id: int(n) for patient_id, n in session.execute(
        select(te.patient_id, func.count()).where(te.organization_id == organization_id, te.month == month)
        .group_by(te.patient_id))}
    # The eligible lists come back as JSON text and are decoded once per distinct text: snapshots repeat a
    # handful of lists, and decoding thousands of identical ones was a third of the panel's time.
    decoded: dict[str | None, list[str]] = {}
    snapshots: dict[str, tuple[list[str], dt.datetime, Any]] = {}
    for patient_id, eligible_text, evaluated_at, kept in session.execute(
            select(ms.patient_id, cast(ms.eligible_programs, Text), ms.evaluated_at, ms.panel)
            .where(ms.organization_id == organization_id, ms.month == month)):
        eligible = decoded.get(eligible_text)
        if eligible is None:
            eligible = decoded[eligible_text] = list(json.loads(eligible_text) or []) if eligible_text else []
        snapshots[patient_id] = (list(eligible), evaluated_at, kept)
    month_patients = or_(
        pr.patient_id.in_(select(te.patient_id).where(te.organization_id == organization_id, te.month == month)),
        pr.patient_id.in_(select(ms.patient_id).where(ms.organization_id == organization_id, ms.month == month)))
    directory: dict[str, tuple[str, str | None, str | None, str | None]] = {
        patient_id: (name, mrn, manager, manager_name or manager)
        for patient_id, name, mrn, manager, manager_name in session.execute(
            select(pr.patient_id, pr.name, pr.mrn, pr.care_manager, pr.care_manager_name)
            .where(pr.organization_id == organization_id, month_patients))}

    # The review date of each patient's latest established care plan (one statement; versions are few).
    reviews: dict[str, tuple[int, dt.date | None]] = {}
    cv = CarePlanVersionRow
    for patient_id, number, due in session.execute(
            select(cv.patient_id, cv.number, cv.review_due)
            .where(cv.organization_id == organization_id, cv.status == CarePlanStatus.ESTABLISHED,
                   or_(cv.patient_id.in_(select(te.patient_id).where(te.organization_id == organization_id,
                                                                     te.month == month)),
                       cv.patient_id.in_(select(ms.patient_id).where(ms.organization_id == organization_id,
                                                                     ms.month == month))))):
        if patient_id not in reviews or number > reviews[patient_id][0]:
            reviews[patient_id] = (number, due)

    pricing = pricing or Pricing(rule_set)
    days_left = Month.parse(month).days_left(today)
    order = _program_order(rule_set)
    rank = {p: i for i, p in enumerate(order)}
    enrolled = set(minutes_by) | {p for p, (eligible, _, _) in snapshots.items() if eligible}
    # One decision per patient-month: the evaluator's, kept by the last page view while the ledger is unchanged,
    # else evaluated here from the facts the rollup would use.
    # Kept summaries stay JSON until a row needs one (most programs of a patient show no row).
    decided: dict[str, Mapping[str, Standing | dict[str, Any]]] = {}
    stale: list[str] = []
    states: dict[str, str] = {}
    for patient_id in sorted(enrolled):
        kept = (snapshots.get(patient_id) or ([], None, None))[2]
        by_program = minutes_by.get(patient_id, {})
        state = ledger_fingerprint(rows_written.get(patient_id, 0),
                                   {(p, r): m for p, rs in by_program.items() for r, m in rs.items()})
        if isinstance(kept, dict) and kept.get("ledger") == state:
            decided[patient_id] = {s["program"]: s for s in kept.get("standings") or ()}
        else:
            stale.append(patient_id)
            states[patient_id] = state
    to_keep: dict[str, tuple[dict[str, Any], dict[str, Any]]] | None = {} if keep else None
    from_facts: dict[str, list[Consent]] = {}
    fresh, unread = _decide_stale(session, organization_id, month, rule_set, timezone, stale, to_keep, states,
                                  from_facts)
    decided.update(fresh)
    if to_keep:
        keep_decisions(session, organization_id, month, to_keep)
        for patient_id, (_, summary) in to_keep.items():
            if patient_id in snapshots:  # the outreach list reads the fresh summary
                snapshots[patient_id] = (*snapshots[patient_id][:2], summary)
    # Enrollment: the app's offers, declines and consents (two statements for the organization) and the EHR's
    # consents as last read.
    app_marks = app_marks_for(session, organization_id, None)

    def marks_of(patient_id: str) -> list[Mark]:
        ehr = from_facts.get(patient_id)
        if ehr is None:
            ehr = _kept_consents((snapshots.get(patient_id) or ([], None, None))[2]) or []
        mine = app_marks.get(patient_id)
        if not ehr:
            return mine or []
        return [*(mine or ()), *ehr_consent_marks(ehr)]

    managers: dict[str, str] = {}
    assessed: dict[tuple[Standing | None, bool], _Assessment] = {}
    keyed: list[tuple[tuple, PanelRow]] = []
    no_minutes: dict[str, dict[str, int]] = {}
    for patient_id in enrolled:
        name, mrn, manager, manager_name = directory.get(patient_id) or (patient_id, None, None, None)
        if manager:
            managers[manager] = manager_name or manager
        if care_manager is not None and manager != care_manager:
            continue
        snap = snapshots.get(patient_id)
        as_of = snap[1] if snap is not None else None
        standing_of = decided.get(patient_id, {})
        eligible_programs = {p for p, s in standing_of.items()
                             if (s["codes"] or s["eligible"] if isinstance(s, dict) else s.codes or s.eligible)}
        by_program = minutes_by.get(patient_id, no_minutes)
        folded = name.casefold()
        marks = marks_of(patient_id)
        for prog in dict.fromkeys([*sorted(by_program), *sorted(eligible_programs)]):
            if program is not None and prog != program:
                continue
            enrolled_as = "" if prog not in ENROLLMENT_PROGRAMS else (
                program_status(prog, marks).status.value if marks else EnrollmentStatus.NONE.value)
            if enrollment is not None and enrolled_as != enrollment:
                continue
            by_role: dict[str, int] = by_program.get(prog) or {}
            minutes = sum(by_role.values())
            found = standing_of.get(prog)
            standing = Standing.from_json(found) if isinstance(found, dict) else found
            if standing is not None and not standing.relevant:
                standing = None  # as the kept summaries leave it out
            if patient_id in unread:
                eligibility = NOT_CHECKED
            else:
                eligibility = ELIGIBLE if prog in eligible_programs else NOT_ELIGIBLE
            # Patients share few distinct standings: assess each (with or without minutes) once.
            memo_key = (standing, minutes > 0)
            a = assessed.get(memo_key)
            if a is None:
                a = assessed[memo_key] = _assess(standing, minutes, close_within, pricing)
            counts = eligibility == ELIGIBLE
            reach = (counts and days_left > 0 and a.status in (CLOSE, BILLABLE) and a.needed is not None
                     and 0 < a.needed <= close_within)
            row = PanelRow(
                patient_id, name, mrn, manager_name, prog, minutes, a.next_code, a.next_threshold, a.needed,
                a.status, as_of, eligibility, manager, a.counted, a.codes_met,
                a.captured if a.codes_met else _ZERO, a.captured_unknown if a.codes_met else 0, reach,
                a.reach_rate if reach else None, enrollment=enrolled_as)
            if prog in CARE_PLAN_PROGRAMS and patient_id in reviews:
                due = reviews[patient_id][1]
                row = replace(row, care_plan_review=due, care_plan_review_due=due is not None and due <= today)
            needed = a.needed if a.needed is not None else _NEVER
            keyed.append(((_GROUP[a.status], needed, folded, patient_id, rank.get(prog, len(rank)), prog), row))

    keyed.sort(key=lambda item: item[0])
    shown = tuple(row for _, row in keyed)
    outreach = _outreach(snapshots, directory, marks_of, program, care_manager, enrollment)
    return Panel(shown, _totals(shown, days_left, pricing.label), _managers(managers),
                 _programs(order, minutes_by, snapshots, rule_set), month, close_within, outreach)


# Who may still be offered a program from the panel; declined, not a candidate, withdrawn and enrolled may not.
_OFFERABLE = (EnrollmentStatus.NONE, EnrollmentStatus.OFFERED)


def _outreach(snapshots: dict[str, tuple[list[str], dt.datetime, Any]],
              directory: dict[str, tuple[str, str | None, str | None, str | None]],
              marks_of: Callable[[str], list[Mark]], program: str | None, care_manager: str | None,
              enrollment: str | None) -> tuple[OutreachRow, ...]:
    """Patients whose kept decision leaves a program to consent alone, not declined or ruled out (by name)."""
    out: list[tuple[tuple[str, str, str], OutreachRow]] = []
    for patient_id, (_, _, kept) in snapshots.items():
        offer = kept.get("consent_only") if isinstance(kept, dict) else None
        if not offer:
            continue
        name, mrn, manager, manager_name = directory.get(patient_id) or (patient_id, None, None, None)
        if care_manager is not None and manager != care_manager:
            continue
        marks = marks_of(patient_id)
        if any(m.holds for m in marks):
            continue  # enrolled in a program already: adding another is the care team's call in the chart
        for prog in offer:
            if prog not in ENROLLMENT_PROGRAMS or (program is not None and prog != program):
                continue
            standing = program_status(prog, marks)
            if standing.status not in _OFFERABLE or (enrollment is not None and standing.status != enrollment):
                continue
            out.append(((name.casefold(), patient_id, prog),
                        OutreachRow(patient_id, name, mrn, manager_name, prog, standing.status.value,
                                    standing.on)))
    return tuple(row for _, row in sorted(out, key=lambda item: item[0]))



def _totals(rows: tuple[PanelRow, ...], days_left: int, label: str) -> Totals:
    by_status = dict.fromkeys(STATUSES, 0)
    captured, within_reach = _ZERO, _ZERO
    captured_unknown = reach_rows = reach_unknown = not_checked = not_eligible = 0
    for r in rows:
        by_status[r.status] += 1
        captured += r.captured
        captured_unknown += r.captured_unknown
        if r.within_reach:
            reach_rows += 1
            if r.reach_rate is None:
                reach_unknown += 1
            else:
                within_reach += r.reach_rate
        if r.eligibility == NOT_CHECKED:
            not_checked += 1
        elif r.eligibility == NOT_ELIGIBLE:
            not_eligible += 1
    return Totals(rows=len(rows), patients=len({r.patient_id for r in rows}), by_status=tuple(by_status.items()),
                  days_left=days_left, captured=captured, captured_unknown=captured_unknown,
                  within_reach=within_reach, within_reach_rows=reach_rows, within_reach_unknown=reach_unknown,
                  not_checked=not_checked, not_eligible=not_eligible, label=label)


def _managers(managers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(managers.items(), key=lambda item: (item[1].casefold(), item[0])))


def _programs(order: tuple[str, ...], minutes_by: dict[str, dict[str, dict[str, int]]],
              snapshots: dict[str, tuple[list[str], dt.datetime, Any]], rule_set: RuleSet) -> tuple[str, ...]:
    """Every program the rule set knows, then any other the month's data names (unfiltered)."""
    found = {prog for programs in minutes_by.values() for prog in programs}
    found |= {rule_set.families[k].time_program if k in rule_set.families else k
              for eligible, _, _ in snapshots.values() for k in eligible}
    return tuple(dict.fromkeys([*order, *sorted(found - set(order))]))


# -- CSV ----------------------------------------------------------------------------------------

def csv_header(label: str) -> tuple[str, ...]:
    """The CSV's column names; the captured column says which estimate it holds."""
    return ("Patient", "MRN", "Patient ID", "Care manager", "Program", "Minutes", "Counted minutes",
            "Next code", "Next threshold (minutes)", "Minutes needed", "Status", "Eligibility",
            "Eligibility as of (UTC)", "Codes met", f"Captured ({label}, USD)", "Within reach", "Enrollment")


def safe_cell(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula (a leading =, +, -, @ gets a quote)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_cells(row: PanelRow) -> list[object]:
    def blank(value: int | None) -> object:
        return "" if value is None else value

    as_of = row.eligibility_as_of.astimezone(dt.UTC).isoformat(timespec="seconds") if row.eligibility_as_of else ""
    return [
        safe_cell(row.name), safe_cell(row.mrn or ""), safe_cell(row.patient_id),
        safe_cell(row.care_manager_name or ""), safe_cell(row.program), row.minutes, row.counted_minutes,
        safe_cell(row.next_code or ""), blank(row.next_threshold), blank(row.minutes_needed),
        row.status, row.eligibility, as_of,
        safe_cell("; ".join(f"{code} x{units}" for code, units in row.codes_met)),
        f"{row.captured:.2f}", "yes" if row.within_reach else "no", row.enrollment,
    ]


def panel_csv(panel: Panel) -> str:
    """The panel as CSV (RFC 4180: CRLF line ends, quoted where needed), one row per patient-program."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(csv_header(panel.totals.label))
    for row in panel.rows:
        writer.writerow(list(_csv_cells(row)))
    return out.getvalue()
