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
* **Revenue estimates** ("estimate, national non-facility rate from the rule set, not a
  payment"): *captured* sums the rule set's `rate.amount` of the codes met now (the base code
  plus the add-on units earned, within `max_units`); *within reach* sums, over rows that are
  close or billable and at most `close_within` minutes from their next threshold while the month
  still has days left (today counts; none once the month has ended in the organization's
  timezone), the rate of that next code or unit. Rows whose snapshot says `not eligible` add to
  neither. A rate of null is not guessed: it adds nothing and is counted as unknown.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.months import next_month, parse_month
from smart_app.ledger.queries import counting
from smart_app.ledger.records import MonthStatusRow, PatientRow
from smart_app.ledger.validation import check_month
from smart_app.ledger.values import PROGRAMS
from smart_app.rules.schema import Code, RuleSet
from smart_app.rules.timecount import addon_units, allocation, base_met, minutes_for_next_unit

ESTIMATE_LABEL = "estimate, national non-facility rate from the rule set, not a payment"
DEFAULT_CLOSE_WITHIN = 10

CLOSE, BILLABLE, IN_PROGRESS, NOT_STARTED, NOT_TIMED = (
    "close", "billable", "in progress", "not started", "not time-based")
STATUSES = (CLOSE, BILLABLE, IN_PROGRESS, NOT_STARTED, NOT_TIMED)
ELIGIBLE, NOT_ELIGIBLE, NOT_CHECKED = "eligible", "not eligible", "not checked"

_ZERO = Decimal("0.00")
_CENT = Decimal("0.01")
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
    label: str = ESTIMATE_LABEL

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

    def counted(self, by_role: dict[str, int]) -> int:
        return sum(m for role, m in by_role.items() if role in self.base.counted_roles)


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


def _rate(code: Code) -> Decimal | None:
    amount = code.rate.amount
    return None if amount is None else Decimal(str(amount)).quantize(_CENT)


def month_days(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of a "YYYY-MM" month."""
    year, mon = parse_month(month)
    after_year, after_mon = parse_month(next_month(month))
    return dt.date(year, mon, 1), dt.date(after_year, after_mon, 1) - dt.timedelta(days=1)


def days_left_in(month: str, today: dt.date) -> int:
    """Days of `month` on which time can still be captured, today included (0 once it is over)."""
    first, last = month_days(month)
    if today > last:
        return 0
    return (last - max(today, first)).days + 1


def _effective(code: Code, first: dt.date, last: dt.date) -> bool:
    eff = code.effective
    return eff.start <= last and (eff.end is None or eff.end >= first)


class _Paths:
    """The rule set's paths per program and family choice, built once per panel."""

    def __init__(self, rule_set: RuleSet, month: str) -> None:
        self.rule_set = rule_set
        self.first, self.last = month_days(month)
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[_Path, ...]] = {}
        self.timed: dict[str, list[str]] = defaultdict(list)
        for key, fam in rule_set.families.items():
            if fam.time_based:
                self.timed[fam.time_program].append(key)

    def program_of(self, family_or_program: str) -> str:
        fam = self.rule_set.families.get(family_or_program)
        return fam.time_program if fam is not None else family_or_program

    def families(self, program: str, eligible: set[str]) -> tuple[str, ...]:
        timed = self.timed.get(program, [])
        chosen = [k for k in timed if k in eligible]
        if chosen:
            return tuple(chosen)
        if program in timed:
            return (program,)
        return tuple(timed)

    def paths(self, program: str, eligible: set[str]) -> tuple[_Path, ...]:
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
                    found.append(_Path(len(found), ck, code, addon_key, addon))
            self._cache[key] = tuple(found)
        return self._cache[key]


def _assess(paths: tuple[_Path, ...], by_role: dict[str, int], minutes: int,
            close_within: int) -> _Assessment:
    if not paths:
        return _Assessment(NOT_TIMED, 0)
    met = [p for p in paths if base_met(p.counted(by_role), p.base)]
    if not met:
        need, _, path = min(((p.base.time.min_minutes or 0) - p.counted(by_role), p.order, p) for p in paths)
        counted = path.counted(by_role)
        if minutes <= 0:
            status = NOT_STARTED
        elif need <= close_within:
            status = CLOSE
        else:
            status = IN_PROGRESS
        return _Assessment(status, counted, path.key, path.base.time.min_minutes, need, _rate(path.base))

    def units_of(p: _Path) -> int:
        return addon_units(p.counted(by_role), p.base, p.addon) if p.addon is not None else 0

    def score(p: _Path) -> tuple[int, Decimal, int]:
        units = units_of(p)
        behind = sum(allocation(p.counted(by_role), p.base, p.addon, units))
        rate = (_rate(p.base) or _ZERO) + units * ((_rate(p.addon) or _ZERO) if p.addon else _ZERO)
        return behind, rate, -p.order

    path = max(met, key=score)
    counted = path.counted(by_role)
    units = units_of(path)
    codes_met: list[tuple[str, int]] = [(path.key, 1)]
    rates: list[tuple[Decimal | None, int]] = [(_rate(path.base), 1)]
    if path.addon is not None and path.addon_key is not None and units:
        codes_met.append((path.addon_key, units))
        rates.append((_rate(path.addon), units))
    captured = sum((r * n for r, n in rates if r is not None), _ZERO)
    unknown = sum(n for r, n in rates if r is None)
    nxt = (minutes_for_next_unit(counted, path.base, path.addon)
           if path.addon is not None else None)
    if nxt is None:
        return _Assessment(BILLABLE, counted, codes_met=tuple(codes_met), captured=captured,
                           captured_unknown=unknown)
    assert path.addon is not None
    return _Assessment(BILLABLE, counted, path.addon_key, counted + nxt, nxt, _rate(path.addon),
                       tuple(codes_met), captured, unknown)


def _program_order(rule_set: RuleSet) -> tuple[str, ...]:
    known = [fam.time_program for fam in rule_set.families.values()]
    return tuple(dict.fromkeys([*known, *PROGRAMS]))


def _sort_key(row: PanelRow, program_rank: dict[str, int]) -> tuple:
    group = STATUSES.index(row.status)
    needed = row.minutes_needed if row.minutes_needed is not None else float("inf")
    return (group, needed, row.name.casefold(), row.patient_id, program_rank.get(row.program, 99), row.program)


def panel_rows(session: Session, organization_id: str, month: str, rule_set: RuleSet, *, today: dt.date,
               close_within: int = DEFAULT_CLOSE_WITHIN, program: str | None = None,
               care_manager: str | None = None) -> Panel:
    """The panel of an organization-month (see the module docstring for every definition).

    Three statements whatever the number of patients: minutes per patient, program and role;
    the month's snapshots; the directory entries of the month's patients.
    """
    check_month(month)
    if close_within < 0:
        raise ValueError("close_within must be zero or more")
    te, ms, pr = TimeEntryRow, MonthStatusRow, PatientRow
    minutes_by: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for patient_id, prog, role, total in session.execute(
            select(te.patient_id, te.program, te.role, func.sum(te.minutes))
            .where(te.organization_id == organization_id, te.month == month, counting())
            .group_by(te.patient_id, te.program, te.role)):
        minutes_by[patient_id][prog][role] = int(total or 0)
    snapshots: dict[str, tuple[list[str], dt.datetime]] = {
        patient_id: (list(eligible or []), evaluated_at)
        for patient_id, eligible, evaluated_at in session.execute(
            select(ms.patient_id, ms.eligible_programs, ms.evaluated_at)
            .where(ms.organization_id == organization_id, ms.month == month))}
    month_patients = or_(
        pr.patient_id.in_(select(te.patient_id).where(te.organization_id == organization_id, te.month == month)),
        pr.patient_id.in_(select(ms.patient_id).where(ms.organization_id == organization_id, ms.month == month)))
    directory = {row.patient_id: row for row in session.execute(
        select(pr.patient_id, pr.name, pr.mrn, pr.care_manager, pr.care_manager_name)
        .where(pr.organization_id == organization_id, month_patients))}

    paths = _Paths(rule_set, month)
    days_left = days_left_in(month, today)
    enrolled = set(minutes_by) | {p for p, (eligible, _) in snapshots.items() if eligible}
    rows: list[PanelRow] = []
    managers: dict[str, str] = {}
    for patient_id in enrolled:
        person = directory.get(patient_id)
        eligible_keys, as_of = snapshots.get(patient_id, ([], None))
        eligible_set = set(eligible_keys)
        eligible_programs = {paths.program_of(k) for k in eligible_keys}
        if person is not None and person.care_manager:
            managers[person.care_manager] = person.care_manager_name or person.care_manager
        programs = dict.fromkeys([*sorted(minutes_by.get(patient_id, {})), *sorted(eligible_programs)])
        for prog in programs:
            by_role = minutes_by.get(patient_id, {}).get(prog, {})
            minutes = sum(by_role.values())
            if patient_id not in snapshots:
                eligibility = NOT_CHECKED
            else:
                eligibility = ELIGIBLE if prog in eligible_programs else NOT_ELIGIBLE
            a = _assess(paths.paths(prog, eligible_set), by_role, minutes, close_within)
            counts = eligibility != NOT_ELIGIBLE
            reach = (counts and days_left > 0 and a.status in (CLOSE, BILLABLE) and a.needed is not None
                     and 0 < a.needed <= close_within)
            rows.append(PanelRow(
                patient_id=patient_id, name=person.name if person is not None else patient_id,
                mrn=person.mrn if person is not None else None,
                care_manager_name=(person.care_manager_name or person.care_manager) if person is not None else None,
                program=prog, minutes=minutes, next_code=a.next_code, next_threshold=a.next_threshold,
                minutes_needed=a.needed, status=a.status, eligibility_as_of=as_of, eligibility=eligibility,
                care_manager=person.care_manager if person is not None else None, counted_minutes=a.counted,
                codes_met=a.codes_met, captured=a.captured if counts else _ZERO,
                captured_unknown=a.captured_unknown if counts else 0, within_reach=reach,
                reach_rate=a.reach_rate if reach else None))

    order = _program_order(rule_set)
    rank = {p: i for i, p in enumerate(order)}
    shown = [r for r in rows if (program is None or r.program == program)
             and (care_manager is None or r.care_manager == care_manager)]
    shown.sort(key=lambda r: _sort_key(r, rank))
    reach_rows = [r for r in shown if r.within_reach]
    totals = Totals(
        rows=len(shown), patients=len({r.patient_id for r in shown}),
        by_status=tuple((s, sum(1 for r in shown if r.status == s)) for s in STATUSES),
        days_left=days_left,
        captured=sum((r.captured for r in shown), _ZERO),
        captured_unknown=sum(r.captured_unknown for r in shown),
        within_reach=sum((r.reach_rate for r in reach_rows if r.reach_rate is not None), _ZERO),
        within_reach_rows=len(reach_rows),
        within_reach_unknown=sum(1 for r in reach_rows if r.reach_rate is None),
        not_checked=sum(1 for r in shown if r.eligibility == NOT_CHECKED),
        not_eligible=sum(1 for r in shown if r.eligibility == NOT_ELIGIBLE))
    programs_found = tuple(dict.fromkeys([*order, *sorted({r.program for r in rows} - set(order))]))
    care_managers = tuple(sorted(managers.items(), key=lambda item: (item[1].casefold(), item[0])))
    return Panel(tuple(shown), totals, care_managers, programs_found, month, close_within)


# -- CSV ----------------------------------------------------------------------------------------

CSV_HEADER = ("Patient", "MRN", "Patient ID", "Care manager", "Program", "Minutes", "Counted minutes",
              "Next code", "Next threshold (minutes)", "Minutes needed", "Status", "Eligibility",
              "Eligibility as of (UTC)", "Codes met", f"Captured ({ESTIMATE_LABEL}, USD)",
              "Within reach")


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
    writer.writerow(CSV_HEADER)
    for row in panel.rows:
        writer.writerow(list(_csv_cells(row)))
    return out.getvalue()
