"""Recording time and correcting it: append-only (a correction is a new row), overlap-checked, split at month ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.db import utcnow
from smart_app.ledger.audit import ENTRY_AMENDED, ENTRY_RECORDED, ENTRY_VOIDED
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.errors import AlreadyCorrected, InvalidEntry, MonthClosed, OverlapError
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.month_locks import is_locked, lock_message
from smart_app.ledger.months import Month, Span, split_at_months, zone
from smart_app.ledger.overlap import first_conflict
from smart_app.ledger.queries import counting_overlaps, get_entry, to_entries
from smart_app.ledger.validation import check_entry, check_reason, local_time, program_label
from smart_app.ledger.values import Entry, EntryInput, RecordResult
from smart_app.ledger.vocabulary import Vocabulary, default_vocabulary
from smart_app.ledger.writelock import lock_performers, share_months
from smart_app.statuses import EntryKind


def new_id() -> str:
    return str(uuid.uuid4())


def _what(fields: EntryInput | Entry, vocabulary: Vocabulary) -> str:
    activity = vocabulary.get(fields.activity)
    return f"{program_label(fields.program)} ({activity.label if activity else fields.activity})"


def check_open_month(months: Iterable[str], now: datetime, tz: ZoneInfo, allow_closed_month: bool) -> None:
    """Refuse time outside the open month unless the caller said it is meant."""
    current = Month.at(now, tz)
    closed = sorted(m for m in set(months) if m != current.key)
    if closed and not allow_closed_month:
        label = Month.parse(closed[0]).label
        raise MonthClosed(f"This time falls in {label}, but {current.label} is the month open for entries.",
                          f"Check the date. If {label} is right, confirm that you are adding time to a closed "
                          "month; the biller will see it.", closed[0])


def _ensure_uncorrected(session: Session, target: Entry) -> None:
    later = session.scalar(select(TimeEntryRow).where(TimeEntryRow.corrects_id == target.id))
    if later is not None:
        how = "voided" if later.kind == EntryKind.VOID else "amended"
        raise AlreadyCorrected(f"This entry was already {how} by {later.recorded_by} on {later.recorded_at:%b %d, %Y}.",
                               "Reload the page and correct the latest version of the entry.", later.id)


def _conflict_error(conflict: Entry, tz: ZoneInfo, vocabulary: Vocabulary) -> OverlapError:
    return OverlapError(
        f"You already have {conflict.minutes} minutes of {_what(conflict, vocabulary)} recorded from "
        f"{local_time(conflict.start, tz)} to {local_time(conflict.end, tz)} (patient {conflict.patient_id}); "
        "the same time cannot be counted twice.",
        "Change the start or the minutes so the times do not overlap, correct the earlier entry, or mark this "
        "entry as shared time if the same minutes deliberately count for both.", conflict)


def write_entries(session: Session, fields: EntryInput, pieces: list[Span], tz: ZoneInfo, *, kind: EntryKind,
                  corrects: Entry | None, recorded_by: str, reason: str, now: datetime, timer_id: str | None,
                  vocabulary: Vocabulary) -> list[TimeEntryRow]:
    """Insert one row per month piece after the overlap check, all under the person's write lock."""
    performers = {fields.performer} | ({corrects.performer} if corrects else set())
    lock_performers(session, fields.organization_id, performers)
    share_months(session, fields.organization_id, {p.month for p in pieces} | ({corrects.month} if corrects else set()))
    if corrects is not None:
        _ensure_uncorrected(session, corrects)
    if not fields.shared:
        clashes = counting_overlaps(session, fields.organization_id, fields.performer, pieces[0].start, pieces[-1].end)
        conflict = first_conflict(pieces[0].start, pieces[-1].end, clashes,
                                  frozenset({corrects.id}) if corrects else frozenset())
        if conflict is not None:
            raise _conflict_error(conflict, tz, vocabulary)
    ids = [new_id() for _ in pieces]
    # The pieces of a split entry share the first piece's id as their group, so each links to the others.
    group = ids[0] if len(pieces) > 1 else None
    rows = [TimeEntryRow(
        id=row_id, organization_id=fields.organization_id, patient_id=fields.patient_id,
        performer=fields.performer, role=fields.role, program=fields.program, activity=fields.activity,
        starts_at=piece.start, ends_at=piece.end, minutes=piece.minutes, month=piece.month, note=fields.note,
        source=fields.source, shared=fields.shared, kind=kind if index == 0 else EntryKind.ENTRY,
        corrects_id=corrects.id if corrects is not None and index == 0 else None, reason=reason,
        recorded_by=recorded_by, recorded_at=now,
        late=is_locked(session, fields.organization_id, fields.patient_id, piece.month),
        split_group=group, timer_id=timer_id,
    ) for index, (row_id, piece) in enumerate(zip(ids, pieces, strict=True))]
    session.add_all(rows)
    session.flush()
    return rows


def describe(verb: str, fields: EntryInput, entries: list[Entry], tz: ZoneInfo, vocabulary: Vocabulary) -> str:
    """A sentence for the UI about what was written."""
    total = sum(e.minutes for e in entries)
    text = f"{verb} {total} minutes of {_what(fields, vocabulary)} from {local_time(entries[0].start, tz)}."
    if len(entries) > 1:
        parts = " and ".join(f"{e.minutes} in {Month.parse(e.month).label}" for e in entries)
        text += f" The time crosses a month end, so it was split: {parts}."
    for month in sorted({e.month for e in entries if e.late}):
        text += " " + lock_message(month)
    return text


def record_entry(session: Session, entry: EntryInput, *, timezone: str, recorded_by: str | None = None,
                 allow_closed_month: bool = False, now: datetime | None = None,
                 vocabulary: Vocabulary | None = None) -> RecordResult:
    """Record time (split at month ends in the organization's `timezone`); raises a LedgerError if refused."""
    now, tz, vocabulary = now or utcnow(), zone(timezone), vocabulary or default_vocabulary()
    start = check_entry(entry, vocabulary, now, tz)
    pieces = split_at_months(start, entry.minutes, tz)
    check_open_month((p.month for p in pieces), now, tz, allow_closed_month)
    rows = write_entries(session, entry, pieces, tz, kind=EntryKind.ENTRY, corrects=None,
                         recorded_by=recorded_by or entry.performer, reason="", now=now, timer_id=None,
                         vocabulary=vocabulary)
    written = to_entries(session, rows)
    record_rows(session, rows, actor=recorded_by or entry.performer, action=ENTRY_RECORDED,
                subject=f"Patient/{entry.patient_id}", organization_id=entry.organization_id, now=now,
                detail={"patient": entry.patient_id, "entries": [e.id for e in written], "program": entry.program,
                        "minutes": entry.minutes, "late": any(e.late for e in written)})
    return RecordResult(tuple(written), describe("Recorded", entry, written, tz, vocabulary),
                        any(e.late for e in written))


def amend_entry(session: Session, organization_id: str, entry_id: str, replacement: EntryInput, *, by: str,
                reason: str, timezone: str, allow_closed_month: bool = False, now: datetime | None = None,
                vocabulary: Vocabulary | None = None) -> RecordResult:
    """Replace an entry by a new one that records who, when and why; the original row stays as it was."""
    now, tz, vocabulary = now or utcnow(), zone(timezone), vocabulary or default_vocabulary()
    reason = check_reason(reason)
    target = get_entry(session, organization_id, entry_id)
    if target.kind == EntryKind.VOID:
        raise InvalidEntry("A void cannot be amended.", "Record the time again as a new entry instead.")
    if replacement.organization_id != organization_id:
        raise InvalidEntry("An amendment cannot move time to another organization.",
                           "Void the entry here and record the time in the other organization.")
    start = check_entry(replacement, vocabulary, now, tz)
    pieces = split_at_months(start, replacement.minutes, tz)
    check_open_month([target.month, *(p.month for p in pieces)], now, tz, allow_closed_month)
    rows = write_entries(session, replacement, pieces, tz, kind=EntryKind.AMENDMENT, corrects=target, recorded_by=by,
                         reason=reason, now=now, timer_id=target.timer_id, vocabulary=vocabulary)
    written = to_entries(session, rows)
    record_rows(session, rows, actor=by, action=ENTRY_AMENDED, subject=f"TimeEntry/{entry_id}",
                organization_id=organization_id, now=now,
                detail={"patient": target.patient_id, "by_entries": [e.id for e in written], "reason": reason})
    return RecordResult(tuple(written), describe("Amended: now", replacement, written, tz, vocabulary),
                        any(e.late for e in written))


def void_entry(session: Session, organization_id: str, entry_id: str, *, by: str, reason: str, timezone: str,
               allow_closed_month: bool = False, now: datetime | None = None,
               vocabulary: Vocabulary | None = None) -> RecordResult:
    """Cancel an entry with a void row that records who, when and why; the original row stays as it was."""
    now, tz, vocabulary = now or utcnow(), zone(timezone), vocabulary or default_vocabulary()
    reason = check_reason(reason)
    target = get_entry(session, organization_id, entry_id)
    if target.kind == EntryKind.VOID:
        raise InvalidEntry("This row already records a void.", "Nothing to do: the time it voided no longer counts.")
    check_open_month([target.month], now, tz, allow_closed_month)
    lock_performers(session, organization_id, [target.performer])
    share_months(session, organization_id, [target.month])
    _ensure_uncorrected(session, target)
    row = TimeEntryRow(
        id=new_id(), organization_id=organization_id, patient_id=target.patient_id, performer=target.performer,
        role=target.role, program=target.program, activity=target.activity, starts_at=target.start,
        ends_at=target.end, minutes=target.minutes, month=target.month, note=target.note, source=target.source,
        shared=target.shared, kind=EntryKind.VOID, corrects_id=target.id, reason=reason, recorded_by=by,
        recorded_at=now, late=is_locked(session, organization_id, target.patient_id, target.month), split_group=None,
        timer_id=None,
    )
    session.add(row)
    record_rows(session, [row], actor=by, action=ENTRY_VOIDED, subject=f"TimeEntry/{entry_id}",
                organization_id=organization_id, now=now,
                detail={"patient": target.patient_id, "void": row.id, "reason": reason})
    written = to_entries(session, [row])
    message = (f"Voided {target.minutes} minutes of {_what(target, vocabulary)} from "
               f"{local_time(target.start, tz)}.")
    if row.late:
        message += " " + lock_message(target.month)
    return RecordResult(tuple(written), message, row.late)
