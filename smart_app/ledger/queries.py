"""Reading the ledger: a patient's month (corrections applied, and raw), minutes per program and role, late entries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.orm import Session, aliased

from smart_app.ledger.errors import LedgerNotFound
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.month_locks import is_locked
from smart_app.ledger.months import Month
from smart_app.ledger.values import Entry, MinutesLine, MonthMinutes, PatientMonth
from smart_app.statuses import EntryKind


def _to_entry(row: TimeEntryRow, correctors: dict[str, TimeEntryRow]) -> Entry:
    by = correctors.get(row.id)
    return Entry(
        id=row.id, organization_id=row.organization_id, patient_id=row.patient_id, performer=row.performer,
        role=row.role, program=row.program, activity=row.activity, start=row.starts_at, minutes=row.minutes,
        month=row.month, note=row.note, source=row.source, shared=row.shared, kind=row.kind,
        corrects_id=row.corrects_id, reason=row.reason, recorded_by=row.recorded_by, recorded_at=row.recorded_at,
        late=row.late, split_group=row.split_group, timer_id=row.timer_id,
        amended_by=by.id if by is not None and by.kind == EntryKind.AMENDMENT else None,
        voided_by=by.id if by is not None and by.kind == EntryKind.VOID else None,
    )


def to_entries(session: Session, rows: Sequence[TimeEntryRow]) -> list[Entry]:
    """Views of rows, each told which later row (if any) amended or voided it."""
    ids = [row.id for row in rows]
    correctors: dict[str, TimeEntryRow] = {}
    # Chunked so a long history stays under every backend's bound-parameter limit.
    for chunk in range(0, len(ids), 500):
        found = session.scalars(select(TimeEntryRow).where(TimeEntryRow.corrects_id.in_(ids[chunk:chunk + 500])))
        correctors.update({row.corrects_id: row for row in found if row.corrects_id})
    return [_to_entry(row, correctors) for row in rows]


def counting() -> ColumnElement[bool]:
    """SQL condition: the row counts (not a void, and no later row corrects it)."""
    later = aliased(TimeEntryRow)
    return and_(TimeEntryRow.kind != EntryKind.VOID, ~exists().where(later.corrects_id == TimeEntryRow.id))


def get_entry(session: Session, organization_id: str, entry_id: str) -> Entry:
    """One entry of this organization, with what corrected it; LedgerNotFound otherwise."""
    row = session.get(TimeEntryRow, entry_id)
    if row is None or row.organization_id != organization_id:
        raise LedgerNotFound(f"No time entry {entry_id!r} in this organization.",
                             "Reload the page: the entry list may be out of date.")
    return to_entries(session, [row])[0]


def patient_month(session: Session, organization_id: str, patient_id: str, month: str) -> PatientMonth:
    """A patient's month: counting entries, and every row written (amendments, voids) oldest first."""
    Month.parse(month)
    rows = session.scalars(select(TimeEntryRow).where(
        TimeEntryRow.organization_id == organization_id, TimeEntryRow.patient_id == patient_id,
        TimeEntryRow.month == month).order_by(TimeEntryRow.recorded_at, TimeEntryRow.starts_at)).all()
    history = to_entries(session, rows)
    effective = sorted((e for e in history if e.effective), key=lambda e: (e.start, e.recorded_at))
    return PatientMonth(organization_id, patient_id, month, is_locked(session, organization_id, patient_id, month),
                        tuple(effective), tuple(history))


def month_minutes(session: Session, organization_id: str, patient_id: str, month: str) -> MonthMinutes:
    """Counting minutes of a patient-month per program and performer role (the billing evaluator's input)."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for entry in patient_month(session, organization_id, patient_id, month).entries:
        line = totals[(entry.program, entry.role)]
        line[0] += entry.minutes
        if entry.shared:
            line[1] += entry.minutes
    lines = tuple(MinutesLine(program, role, minutes, shared) for (program, role), (minutes, shared)
                  in sorted(totals.items()))
    return MonthMinutes(organization_id, patient_id, month, lines)


def late_entries(session: Session, organization_id: str, month: str) -> tuple[Entry, ...]:
    """Rows written into a month after it was locked, oldest first: the biller's to-do list."""
    Month.parse(month)
    rows = session.scalars(select(TimeEntryRow).where(
        TimeEntryRow.organization_id == organization_id, TimeEntryRow.month == month,
        TimeEntryRow.late.is_(True)).order_by(TimeEntryRow.recorded_at)).all()
    return tuple(to_entries(session, rows))


def counting_overlaps(session: Session, organization_id: str, performer: str, start: datetime,
                      end: datetime) -> list[Entry]:
    """Counting entries of one person that share time with [start, end)."""
    rows = session.scalars(select(TimeEntryRow).where(
        TimeEntryRow.organization_id == organization_id, TimeEntryRow.performer == performer,
        TimeEntryRow.starts_at < end, TimeEntryRow.ends_at > start, counting(),
    ).order_by(TimeEntryRow.starts_at)).all()
    return to_entries(session, rows)


def ledger_fingerprint(rows: int, minutes: Mapping[tuple[str, str], int]) -> str:
    """A patient-month's ledger state in one string: rows ever written (append-only) and counting minutes.

    Any entry, amendment or void adds a row, so a decision kept with this string is current while it matches.
    """
    parts = ";".join(f"{program}/{role}/{m}" for (program, role), m in sorted(minutes.items()) if m)
    return f"{rows}:{parts}"


def month_fingerprint(month: PatientMonth) -> str:
    """`ledger_fingerprint` of a patient-month read with `patient_month`."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for entry in month.entries:
        sums[(entry.program, entry.role)] += entry.minutes
    return ledger_fingerprint(len(month.history), sums)


def recent_choices(session: Session, organization_id: str, patient_id: str, performer: str,
                   limit: int = 50) -> list[tuple[str, str]]:
    """(program, activity) of this person's latest entries for this patient, newest recorded first."""
    rows = session.execute(
        select(TimeEntryRow.program, TimeEntryRow.activity)
        .where(TimeEntryRow.organization_id == organization_id, TimeEntryRow.patient_id == patient_id,
               TimeEntryRow.performer == performer, TimeEntryRow.kind != EntryKind.VOID)
        .order_by(TimeEntryRow.recorded_at.desc(), TimeEntryRow.starts_at.desc()).limit(limit))
    return [(program, activity) for program, activity in rows]
