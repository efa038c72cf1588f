"""The care-team panel: every enrolled patient of one organization-month, who is closest to a
billing threshold, and the month's estimated revenue. Read-only; a fixed number of statements.

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
  time; `counted_minutes` is the time of the roles the rule set counts toward `next_code` (or
  toward the codes already met).
* **Eligibility**: from the snapshot of the last in-chart evaluation (`month_status`), shown as
  "eligibility as of <evaluated_at>". `eligible`: the snapshot lists a family of this program;
  `not eligible`: a snapshot exists but lists none (the minutes are still shown, without revenue);
  `not checked`: no snapshot for the patient-month ("eligibility not yet checked").
* **Paths and thresholds**: each base code (a time-based code without `base_codes`) of the
  program's families is a path, with its first add-on. The families are the eligible ones of the
  snapshot; without an eligible family, the family named like the program (`ccm`, never
  `complex_ccm`, which needs documented complexity), else every time-based family of the program.
  Codes not effective in the month are left out. A path counts only the minutes of its code's
  `counted_roles`.
  - No base code met: the next threshold is the smallest unmet `min_minutes` of a base code
    (fewest minutes still needed, rule-file order on ties).
  - A base code met: the path billed is the one with the most minutes behind its codes, then the
    higher known rate, then rule-file order (as the evaluator's default policy); the next
    threshold is its next add-on unit (none at the add-on's cap or without an add-on).
* **Status**: `billable` (a base code's threshold is met); `close` (not billable, some minutes
  recorded, and at most `close_within` minutes short of the next threshold); `in progress`
  (minutes recorded); `not started` (no minutes, e.g. eligible by snapshot only);
  `not time-based` (TCM, APCM: no minute threshold, no estimate).
* **Sort**: close rows first (fewest minutes needed first), then billable rows (closest next
  add-on unit first, those at the cap last), then in progress, not started and not time-based,
  each by minutes needed; ties by patient name (case-insensitive), patient id, then program.
* **Filters**: `program` (a time program key) and `care_manager` (the `patients.care_manager`
  reference). Totals follow the filters; the lists of programs and care managers do not.
* **Revenue estimates** (labelled by `Pricing.label`, e.g. "national estimate, non-facility,
  conversion factor $33.4009; not a payment amount"): each code's estimate comes from
  `smart_app.rules.rates.estimate`, national or, when the organization names its Medicare
  locality's GPCIs, the locality estimate, and the label says which. *captured* sums the estimates
  of the codes met now (the base code
  plus the add-on units earned, within `max_units`); *within reach* sums, over rows that are
  close or billable and at most `close_within` minutes from their next threshold while the month
  still has days left (today counts; none once the month has ended in the organization's
  timezone), the rate of that next code or unit. Rows whose snapshot says `not eligible` add to
  neither. A code with no figure is not guessed: it adds nothing and is counted as unknown.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.months import Month
from smart_app.ledger.queries import counting
from smart_app.ledger.records import MonthStatusRow, PatientRow
from smart_app.ledger.values import PROGRAMS
from smart_app.rules.rates import Pricing
from smart_app.rules.schema import Code, RuleSet
from smart_app.rules.timecount import addon_units, allocation, base_met, minutes_for_next_unit

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


@dataclass(frozen=True)
class _Path:
    order: int
    key: str
    base: Code
    addon_key: str | None
    addon: Code | None
    roles: frozenset[str]
    # One unit's estimate of the base code and of the add-on (None: no figure in the rule set).
    base_rate: Decimal | None = None
    addon_rate: Decimal | None = None

    def counted(self, by_role: dict[str, int]) -> int:
        return sum(m for role, m in by_role.items() if role in self.roles)


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




def _effective(code: Code, first: dt.date, last: dt.date) -> bool:
    eff = code.effective
    return eff.start <= last and (eff.end is None or eff.end >= first)


class _Paths:
    """The rule set's paths per program and family choice, built once per panel."""

    def __init__(self, rule_set: RuleSet, month: str, pricing: Pricing) -> None:
        self.rule_set = rule_set
        self.pricing = pricing
        service_month = Month.parse(month)
        self.first, self.last = service_month.first_day, service_month.last_day
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[_Path, ...]] = {}
        self.timed: dict[str, list[str]] = defaultdict(list)
        for key, fam in rule_set.families.items():
            if fam.time_based:
                self.timed[fam.time_program].append(key)

    def program_of(self, family_or_program: str) -> str:
        fam = self.rule_set.families.get(family_or_program)
        return fam.time_program if fam is not None else family_or_program

    def families(self, program: str, eligible: AbstractSet[str]) -> tuple[str, ...]:
        timed = self.timed.get(program, [])
        chosen = [k for k in timed if k in eligible]
        if chosen:
            return tuple(chosen)
        if program in timed:
            return (program,)
        return tuple(timed)

    def paths(self, program: str, eligible: AbstractSet[str]) -> tuple[tuple[str, tuple[str, ...]], tuple[_Path, ...]]:
        """A hashable key of the choice, and the paths."""
        families = self.families(program, eligible)
        key = (program, families)
        if key not in self._cache:
            found: list[_Path] = []
            for fk in families:
                codes = self.rule_set.families[fk].codes
                for ck, code in codes.items():
                    if code.base_codes or not _effective(code, self.first, self.last):
                        continue
                    addons = [(ak, a) for ak, a in codes.items()
                              if ck in a.base_codes and _effective(a, self.first, self.last)]
                    addon_key, addon = addons[0] if addons else (None, None)
                    found.append(_Path(len(found), ck, code, addon_key, addon, frozenset(code.counted_roles),
                                       self.pricing.unit(ck).amount,
                                       self.pricing.unit(addon_key).amount if addon_key else None))
            self._cache[key] = tuple(found)
        return key, self._cache[key]


def _assess(paths: tuple[_Path, ...], counted: tuple[int, ...], started: bool,
            close_within: int) -> _Assessment:
    """Status, next threshold and codes met of one patient-program, from each path's counted minutes."""
    if not paths:
        return _Assessment(NOT_TIMED, 0)
    met = [(p, m) for p, m in zip(paths, counted, strict=True) if base_met(m, p.base)]
    if not met:
        need, _, path, mins = min(((p.base.time.min_minutes or 0) - m, p.order, p, m)
                                  for p, m in zip(paths, counted, strict=True))
        if not started:
            status = NOT_STARTED
        elif need <= close_within:
            status = CLOSE
        else:
            status = IN_PROGRESS
        return _Assessment(status, mins, path.key, path.base.time.min_minutes, need, path.base_rate)

    def units_of(p: _Path, m: int) -> int:
        return addon_units(m, p.base, p.addon) if p.addon is not None else 0

    def score(item: tuple[_Path, int]) -> tuple[int, Decimal, int]:
        p, m = item
        units = units_of(p, m)
        behind = sum(allocation(m, p.base, p.addon, units))
        rate = (p.base_rate or _ZERO) + units * ((p.addon_rate or _ZERO) if p.addon else _ZERO)
        return behind, rate, -p.order

    path, mins = max(met, key=score)
    units = units_of(path, mins)
    codes_met: list[tuple[str, int]] = [(path.key, 1)]
    rates: list[tuple[Decimal | None, int]] = [(path.base_rate, 1)]
    if path.addon is not None and path.addon_key is not None and units:
        codes_met.append((path.addon_key, units))
        rates.append((path.addon_rate, units))
    captured = sum((r * n for r, n in rates if r is not None), _ZERO)
    unknown = sum(n for r, n in rates if r is None)
    nxt = minutes_for_next_unit(mins, path.base, path.addon) if path.addon is not None else None
    if nxt is None:
        return _Assessment(BILLABLE, mins, codes_met=tuple(codes_met), captured=captured,
                           captured_unknown=unknown)
    return _Assessment(BILLABLE, mins, path.addon_key, mins + nxt, nxt, path.addon_rate,
                       tuple(codes_met), captured, unknown)


def _program_order(rule_set: RuleSet) -> tuple[str, ...]:
    known = [fam.time_program for fam in rule_set.families.values()]
    return tuple(dict.fromkeys([*known, *PROGRAMS]))


_GROUP = {status: i for i, status in enumerate(STATUSES)}
_NEVER = 1 << 30  # sorts rows with no next threshold after every number of minutes


def panel_rows(session: Session, organization_id: str, month: str, rule_set: RuleSet, *, today: dt.date,
               close_within: int = DEFAULT_CLOSE_WITHIN, program: str | None = None,
               care_manager: str | None = None, pricing: Pricing | None = None) -> Panel:
    """The panel of an organization-month (see the module docstring for every definition).

    `pricing` prices the estimates (default: national figures of `rule_set`).

    Three statements whatever the number of patients: minutes per patient, program and role;
    the month's snapshots; the directory entries of the month's patients.
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
    # The eligible lists come back as JSON text and are decoded once per distinct text: snapshots repeat a
    # handful of lists, and decoding thousands of identical ones was a third of the panel's time.
    decoded: dict[str | None, list[str]] = {}
    snapshots: dict[str, tuple[list[str], dt.datetime]] = {}
    for patient_id, eligible_text, evaluated_at in session.execute(
            select(ms.patient_id, cast(ms.eligible_programs, Text), ms.evaluated_at)
            .where(ms.organization_id == organization_id, ms.month == month)):
        eligible = decoded.get(eligible_text)
        if eligible is None:
            eligible = decoded[eligible_text] = list(json.loads(eligible_text) or []) if eligible_text else []
        snapshots[patient_id] = (list(eligible), evaluated_at)
    month_patients = or_(
        pr.patient_id.in_(select(te.patient_id).where(te.organization_id == organization_id, te.month == month)),
        pr.patient_id.in_(select(ms.patient_id).where(ms.organization_id == organization_id, ms.month == month)))
    directory: dict[str, tuple[str, str | None, str | None, str | None]] = {
        patient_id: (name, mrn, manager, manager_name or manager)
        for patient_id, name, mrn, manager, manager_name in session.execute(
            select(pr.patient_id, pr.name, pr.mrn, pr.care_manager, pr.care_manager_name)
            .where(pr.organization_id == organization_id, month_patients))}

    pricing = pricing or Pricing(rule_set)
    paths = _Paths(rule_set, month, pricing)
    days_left = Month.parse(month).days_left(today)
    order = _program_order(rule_set)
    rank = {p: i for i, p in enumerate(order)}
    enrolled = set(minutes_by) | {p for p, (eligible, _) in snapshots.items() if eligible}
    managers: dict[str, str] = {}
    assessed: dict[tuple, _Assessment] = {}
    # Snapshots repeat a handful of eligible lists: map each list to its programs once.
    eligible_cache: dict[tuple[str, ...], tuple[tuple[str, ...], frozenset[str]]] = {}
    paths_cache: dict[tuple[str, frozenset[str]], tuple[tuple, tuple[_Path, ...]]] = {}
    keyed: list[tuple[tuple, PanelRow]] = []
    no_minutes: dict[str, dict[str, int]] = {}
    for patient_id in enrolled:
        name, mrn, manager, manager_name = directory.get(patient_id) or (patient_id, None, None, None)
        if manager:
            managers[manager] = manager_name or manager
        if care_manager is not None and manager != care_manager:
            continue
        snap = snapshots.get(patient_id)
        eligible_keys: tuple[str, ...] = tuple(snap[0]) if snap is not None else ()
        as_of = snap[1] if snap is not None else None
        if eligible_keys not in eligible_cache:
            eligible_cache[eligible_keys] = (tuple(sorted({paths.program_of(k) for k in eligible_keys})),
                                             frozenset(eligible_keys))
        eligible_programs, eligible_set = eligible_cache[eligible_keys]
        by_program = minutes_by.get(patient_id, no_minutes)
        folded = name.casefold()
        for prog in dict.fromkeys([*sorted(by_program), *eligible_programs]):
            if program is not None and prog != program:
                continue
            by_role: dict[str, int] = by_program.get(prog) or {}
            minutes = sum(by_role.values())
            if snap is None:
                eligibility = NOT_CHECKED
            else:
                eligibility = ELIGIBLE if prog in eligible_programs else NOT_ELIGIBLE
            found = paths_cache.get((prog, eligible_set))
            if found is None:
                found = paths_cache[(prog, eligible_set)] = paths.paths(prog, eligible_set)
            paths_key, chosen = found
            # Patients share few distinct minute totals: assess each combination once.
            memo_key = (paths_key, frozenset(by_role.items()))
            a = assessed.get(memo_key)
            if a is None:
                counted = tuple(p.counted(by_role) for p in chosen)
                a = assessed[memo_key] = _assess(chosen, counted, minutes > 0, close_within)
            counts = eligibility != NOT_ELIGIBLE
            reach = (counts and days_left > 0 and a.status in (CLOSE, BILLABLE) and a.needed is not None
                     and 0 < a.needed <= close_within)
            row = PanelRow(
                patient_id, name, mrn, manager_name, prog, minutes, a.next_code, a.next_threshold, a.needed,
                a.status, as_of, eligibility, manager, a.counted, a.codes_met,
                a.captured if counts else _ZERO, a.captured_unknown if counts else 0, reach,
                a.reach_rate if reach else None)
            needed = a.needed if a.needed is not None else _NEVER
            keyed.append(((_GROUP[a.status], needed, folded, patient_id, rank.get(prog, len(rank)), prog), row))

    keyed.sort(key=lambda item: item[0])
    shown = tuple(row for _, row in keyed)
    return Panel(shown, _totals(shown, days_left, pricing.label), _managers(managers),
                 _programs(order, minutes_by, snapshots, paths), month, close_within)


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
              snapshots: dict[str, tuple[list[str], dt.datetime]], paths: _Paths) -> tuple[str, ...]:
    """Every program the rule set knows, then any other the month's data names (unfiltered)."""
    found = {prog for programs in minutes_by.values() for prog in programs}
    found |= {paths.program_of(k) for eligible, _ in snapshots.values() for k in eligible}
    return tuple(dict.fromkeys([*order, *sorted(found - set(order))]))


# -- CSV ----------------------------------------------------------------------------------------

def csv_header(label: str) -> tuple[str, ...]:
    """The CSV's column names; the captured column says which estimate it holds."""
    return ("Patient", "MRN", "Patient ID", "Care manager", "Program", "Minutes", "Counted minutes",
            "Next code", "Next threshold (minutes)", "Minutes needed", "Status", "Eligibility",
            "Eligibility as of (UTC)", "Codes met", f"Captured ({label}, USD)", "Within reach")


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
        f"{row.captured:.2f}", "yes" if row.within_reach else "no",
    ]


def panel_csv(panel: Panel) -> str:
    """The panel as CSV (RFC 4180: CRLF line ends, quoted where needed), one row per patient-program."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(csv_header(panel.totals.label))
    for row in panel.rows:
        writer.writerow(list(_csv_cells(row)))
    return out.getvalue()
