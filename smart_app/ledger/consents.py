"""Consent to care-management programs, kept in the app as the system of record.

What CMS expects before CCM, PCM, BHI, CoCM or APCM is billed: the practitioner explained that the
service is available, that cost sharing (deductible, coinsurance) applies, that the patient may stop
at any time (effective the end of that calendar month) and that only one practitioner can bill the
service in a month; the consent may be verbal or written and is documented in the record. TCM needs
no consent.

Rows are append-only: withdrawing a consent writes a new row (kind "withdrawal") that points at it.
Only the write-back columns of a row change later (`mark_writeback`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.db import utcnow
from smart_app.ledger.audit import APP_ACTOR, CONSENT_RECORDED, CONSENT_WITHDRAWN, CONSENT_WRITEBACK
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.errors import LedgerError, LedgerNotFound
from smart_app.ledger.months import Month, zone
from smart_app.ledger.records import ConsentRow
from smart_app.ledger.validation import MAX_NOTE_CHARS, program_label, refuse_nul
from smart_app.ledger.values import PROGRAMS
from smart_app.ledger.writelock import hold_consents
from smart_app.rules.facts import Consent, FactSource
from smart_app.statuses import ConsentKind, WritebackStatus

# TCM is billed on a discharge and a visit; no program consent is asked for it.
CONSENT_PROGRAMS = tuple(p for p in PROGRAMS if p != "tcm")
METHODS = ("verbal", "written")
# A consent dated further back than this is almost surely a typing error in the year.
MAX_CONSENT_AGE_YEARS = 10
MAX_DETAIL_CHARS = 2000
_PERSON_TYPES = ("Practitioner/", "PractitionerRole/")


class InvalidConsent(LedgerError):
    """The consent (or withdrawal) cannot be recorded as given; the message names what is missing."""

    title = "The consent was not recorded"

    def __init__(self, message: str, hint: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint)
        # Names of the ConsentInput fields of the elements not explained, for the form to highlight.
        self.missing = missing


class ConsentConflict(LedgerError):
    """A consent for the program is already active, or the consent was already withdrawn."""

    title = "Consent is already on file"
    status_code = 409

    def __init__(self, message: str, hint: str, existing: ConsentRecord) -> None:
        super().__init__(message, hint)
        self.existing = existing


class AlreadyWithdrawn(ConsentConflict):
    """The consent was withdrawn already (perhaps in another tab); `existing` is the withdrawal."""

    title = "This consent was already withdrawn"


@dataclass(frozen=True)
class ConsentInput:
    """What the clinician documents. `obtained_by` is a FHIR reference (Practitioner/... or PractitionerRole/...)."""

    organization_id: str
    patient_id: str
    program: str
    method: str  # verbal | written
    explained_availability: bool
    explained_cost_sharing: bool
    explained_right_to_stop: bool
    explained_one_practitioner: bool
    obtained_on: date
    obtained_by: str
    note: str = ""


@dataclass(frozen=True)
class ConsentRecord:
    """One row as stored. For a withdrawal, `obtained_on` is the day the patient asked to stop,
    `obtained_by` who recorded it and `withdraws_id` the consent it ends; `withdrawn_by` names the
    withdrawal row of a consent that was withdrawn."""

    id: str
    organization_id: str
    patient_id: str
    program: str
    kind: ConsentKind
    method: str
    explained_availability: bool
    explained_cost_sharing: bool
    explained_right_to_stop: bool
    explained_one_practitioner: bool
    obtained_on: date
    obtained_by: str
    note: str
    recorded_at: datetime
    withdraws_id: str | None
    writeback_status: WritebackStatus
    writeback_detail: str
    fhir_id: str | None
    withdrawn_by: str | None = None

    @property
    def active(self) -> bool:
        """A consent not (yet) withdrawn."""
        return self.kind == ConsentKind.CONSENT and self.withdrawn_by is None

    @property
    def last_covered_day(self) -> date | None:
        """For a withdrawal: the last day the consent still covers (the end of the withdrawal's month)."""
        if self.kind != ConsentKind.WITHDRAWAL:
            return None
        return Month.of(self.obtained_on).last_day


def withdrawal_effective(day: date) -> date:
    """The first day a withdrawal made on `day` takes effect: the first of the next month."""
    return Month.of(day).next().first_day


# The four elements CMS expects explained: (field, what the patient was not told, for messages).
def _elements(program: str) -> tuple[tuple[str, str], ...]:
    label = program_label(program)
    return (
        ("explained_availability", f"that {label} is available to them"),
        ("explained_cost_sharing", "that cost sharing (deductible and coinsurance) applies"),
        ("explained_right_to_stop", "that they may stop at any time (effective the end of the month)"),
        ("explained_one_practitioner", f"that only one practitioner can bill {label} in a month"),
    )


def _new_id() -> str:
    return str(uuid.uuid4())


def _today(now: datetime, timezone: str | None) -> date:
    # Without the organization's zone, take the latest calendar date anywhere on earth (UTC+14), so
    # "today" is never refused as being in the future.
    if timezone:
        return now.astimezone(zone(timezone)).date()
    return (now.astimezone(zone("UTC")) + timedelta(hours=14)).date()


def _fmt(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def check_person(reference: str, what: str) -> str:
    """A Practitioner or PractitionerRole reference, or an InvalidConsent saying how to fix it."""
    if not isinstance(reference, str) or not reference.startswith(_PERSON_TYPES) or reference.endswith("/"):
        raise InvalidConsent(f"{what} {reference!r} is not a Practitioner or PractitionerRole reference.",
                             "Relaunch the app from the EHR so it learns who you are (fhirUser).")
    return reference


def _check_note(note: str) -> str:
    if not isinstance(note, str):
        raise InvalidConsent("The note must be text.", "Type the note again.")
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidConsent(f"The note is {len(note)} characters long; the limit is {MAX_NOTE_CHARS}.",
                             "Shorten the note; scan long documents into the chart instead.")
    refuse_nul(note, "The note", InvalidConsent)
    return note.strip()


def _check_day(day: object, today: date, what: str) -> date:
    if isinstance(day, datetime) or not isinstance(day, date):
        raise InvalidConsent(f"The date {what} is missing or not a calendar date ({day!r}).",
                             "Enter the date as YYYY-MM-DD.")
    if day > today:
        raise InvalidConsent(f"The date {what}, {_fmt(day)}, is in the future.",
                             "Record the consent once the patient has given it, with the day it was given.")
    oldest = today - timedelta(days=round(365.25 * MAX_CONSENT_AGE_YEARS))
    if day < oldest:
        raise InvalidConsent(f"The date {what}, {_fmt(day)}, is more than {MAX_CONSENT_AGE_YEARS} years ago.",
                             "Check the year; if the consent really is that old, ask the patient again and "
                             "record today's consent.")
    return day


def check_consent(data: ConsentInput, today: date) -> None:
    """Validate what the clinician documents; raises InvalidConsent naming what to fix."""
    if not data.organization_id or not data.patient_id:
        raise InvalidConsent("The consent names no organization or patient.",
                             "Relaunch the app from the patient's chart.")
    if data.program == "tcm":
        raise InvalidConsent("Transitional care management (TCM) needs no consent.",
                             "Nothing to record for TCM; record consent for CCM, PCM, BHI, CoCM or APCM only.")
    if data.program not in CONSENT_PROGRAMS:
        choices = ", ".join(program_label(p) for p in CONSENT_PROGRAMS)
        raise InvalidConsent(f"Unknown program {data.program!r}.", f"Choose one of: {choices}.")
    if data.method not in METHODS:
        raise InvalidConsent(f"Unknown consent method {data.method!r}.",
                             "Say whether the patient consented verbally or in writing.")
    missing = [(name, phrase) for name, phrase in _elements(data.program) if getattr(data, name) is not True]
    if missing:
        phrases = [phrase for _, phrase in missing]
        listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " or " + phrases[-1]
        these = "it" if len(phrases) == 1 else "these"
        raise InvalidConsent(f"The patient was not told {listed}; explain {these} before recording consent.",
                             "Explain each point to the patient, tick it on the form and record the consent "
                             "again.", tuple(name for name, _ in missing))
    check_person(data.obtained_by, "The person who obtained consent,")
    _check_day(data.obtained_on, today, "consent was obtained")
    _check_note(data.note)


def _to_records(session: Session, rows: Iterable[ConsentRow]) -> list[ConsentRecord]:
    rows = list(rows)
    ids = [row.id for row in rows if row.kind == ConsentKind.CONSENT]
    withdrawn: dict[str, str] = {}
    for chunk in range(0, len(ids), 500):
        found = session.scalars(select(ConsentRow).where(ConsentRow.withdraws_id.in_(ids[chunk:chunk + 500])))
        withdrawn.update({row.withdraws_id: row.id for row in found if row.withdraws_id})
    return [ConsentRecord(
        id=row.id, organization_id=row.organization_id, patient_id=row.patient_id, program=row.program,
        kind=row.kind, method=row.method, explained_availability=row.explained_availability,
        explained_cost_sharing=row.explained_cost_sharing, explained_right_to_stop=row.explained_right_to_stop,
        explained_one_practitioner=row.explained_one_practitioner, obtained_on=row.obtained_on,
        obtained_by=row.obtained_by, note=row.note, recorded_at=row.recorded_at, withdraws_id=row.withdraws_id,
        writeback_status=row.writeback_status, writeback_detail=row.writeback_detail, fhir_id=row.fhir_id,
        withdrawn_by=withdrawn.get(row.id),
    ) for row in rows]


def _active_rows(session: Session, organization_id: str, patient_id: str,
                 program: str | None = None) -> list[ConsentRecord]:
    query = select(ConsentRow).where(
        ConsentRow.organization_id == organization_id, ConsentRow.patient_id == patient_id,
        ConsentRow.kind == ConsentKind.CONSENT)
    if program is not None:
        query = query.where(ConsentRow.program == program)
    return [r for r in _to_records(session, session.scalars(query.order_by(ConsentRow.obtained_on))) if r.active]


def get_consent(session: Session, organization_id: str, consent_id: str,
                patient_id: str | None = None) -> ConsentRecord:
    """One consent or withdrawal row of this organization (and patient, when named); LedgerNotFound otherwise.

    Another patient's row gets the very answer an unknown id gets, so nothing of it is revealed.
    """
    row = session.get(ConsentRow, consent_id)
    if row is None or row.organization_id != organization_id or patient_id not in (None, row.patient_id):
        raise LedgerNotFound(f"No consent {consent_id!r} in this organization.",
                             "Reload the page: the consent list may be out of date.")
    return _to_records(session, [row])[0]


def record_consent(session: Session, data: ConsentInput, *, now: datetime | None = None,
                   timezone: str | None = None) -> ConsentRecord:
    """Record a patient's consent to a program (write-back "pending"); raises a LedgerError if refused.

    `timezone` (the organization's) decides what "today" is for the future-date check; without it any
    date that is today somewhere on earth is accepted.
    """
    now = now or utcnow()
    check_consent(data, _today(now, timezone))
    hold_consents(session, data.organization_id, data.patient_id, data.program)
    existing = _active_rows(session, data.organization_id, data.patient_id, data.program)
    if existing:
        first = existing[0]
        label = program_label(data.program)
        raise ConsentConflict(
            f"The patient already consented to {label} on {_fmt(first.obtained_on)} "
            f"({first.method}, obtained by {first.obtained_by}); that consent is still active.",
            f"Nothing to record: {label} consent stays in force until the patient withdraws it. To replace it, "
            "record the withdrawal first.", first)
    row = ConsentRow(
        id=_new_id(), organization_id=data.organization_id, patient_id=data.patient_id, program=data.program,
        kind=ConsentKind.CONSENT, method=data.method, explained_availability=data.explained_availability,
        explained_cost_sharing=data.explained_cost_sharing, explained_right_to_stop=data.explained_right_to_stop,
        explained_one_practitioner=data.explained_one_practitioner, obtained_on=data.obtained_on,
        obtained_by=data.obtained_by, note=data.note.strip(), recorded_at=now, withdraws_id=None,
        writeback_status=WritebackStatus.PENDING, writeback_detail="", fhir_id=None,
    )
    session.add(row)
    record_rows(session, [row], actor=data.obtained_by, action=CONSENT_RECORDED, subject=f"Consent/{row.id}",
                organization_id=data.organization_id, now=now,
                detail={"patient": data.patient_id, "program": data.program, "method": data.method,
                        "obtained_on": data.obtained_on.isoformat()})
    return _to_records(session, [row])[0]


def withdraw_consent(session: Session, organization_id: str, consent_id: str, *, by: str, on: date, note: str,
                     method: str = "verbal", now: datetime | None = None,
                     timezone: str | None = None, patient_id: str | None = None) -> ConsentRecord:
    """Record that the patient stopped a program on `on`: a new "withdrawal" row (write-back "pending").

    The consent still covers the rest of that calendar month (CMS: stopping is effective the end of the
    month); `facts_consents` hands the evaluator the date it takes effect.
    """
    now = now or utcnow()
    # The patient is checked first: no validation message may describe another patient's consent.
    target = get_consent(session, organization_id, consent_id, patient_id)
    if target.kind != ConsentKind.CONSENT:
        raise InvalidConsent("This row records a withdrawal, not a consent.",
                             "Pick the consent the patient wants to stop.")
    check_person(by, "The person recording the withdrawal,")
    if method not in METHODS:
        raise InvalidConsent(f"Unknown method {method!r}.", "Say whether the patient asked verbally or in writing.")
    note = _check_note(note)
    _check_day(on, _today(now, timezone), "the patient asked to stop")
    if on < target.obtained_on:
        raise InvalidConsent(f"The withdrawal date, {_fmt(on)}, is before the consent itself "
                             f"({_fmt(target.obtained_on)}).", "Check the date the patient asked to stop.")
    hold_consents(session, organization_id, target.patient_id, target.program)
    target = get_consent(session, organization_id, consent_id)  # re-read under the lock
    if target.withdrawn_by is not None:
        earlier = get_consent(session, organization_id, target.withdrawn_by)
        raise AlreadyWithdrawn(
            f"This {program_label(target.program)} consent was already withdrawn on {_fmt(earlier.obtained_on)} "
            f"(recorded by {earlier.obtained_by}).", "Nothing to do; reload the page to see the current state.",
            earlier)
    row = ConsentRow(
        id=_new_id(), organization_id=organization_id, patient_id=target.patient_id, program=target.program,
        kind=ConsentKind.WITHDRAWAL, method=method, explained_availability=False, explained_cost_sharing=False,
        explained_right_to_stop=False, explained_one_practitioner=False, obtained_on=on, obtained_by=by,
        note=note, recorded_at=now, withdraws_id=target.id, writeback_status=WritebackStatus.PENDING,
        writeback_detail="", fhir_id=None,
    )
    session.add(row)
    record_rows(session, [row], actor=by, action=CONSENT_WITHDRAWN, subject=f"Consent/{row.id}",
                organization_id=organization_id, now=now,
                detail={"patient": target.patient_id, "withdraws": target.id, "on": on.isoformat()})
    return _to_records(session, [row])[0]


def active_consents(session: Session, organization_id: str, patient_id: str) -> list[ConsentRecord]:
    """The patient's consents not withdrawn, by program then date (at most one per program)."""
    found = _active_rows(session, organization_id, patient_id)
    return sorted(found, key=lambda r: (PROGRAMS.index(r.program), r.obtained_on))


def consent_history(session: Session, organization_id: str, patient_id: str,
                    program: str | None = None) -> list[ConsentRecord]:
    """Every consent and withdrawal row of the patient (optionally one program), oldest recorded first."""
    query = select(ConsentRow).where(ConsentRow.organization_id == organization_id,
                                     ConsentRow.patient_id == patient_id)
    if program is not None:
        query = query.where(ConsentRow.program == program)
    # Ties (one request recording both) fall back to the day, then consent before withdrawal.
    order = (ConsentRow.recorded_at, ConsentRow.obtained_on, ConsentRow.kind, ConsentRow.id)
    return _to_records(session, session.scalars(query.order_by(*order)))


def facts_consents(records: Iterable[ConsentRecord]) -> tuple[Consent, ...]:
    """What the evaluator gets from a patient's consent history (`consent_history`).

    A consent is an "active" record dated the day it was obtained. A withdrawal is a later "inactive"
    record for the program, dated the first day of the month after the patient asked to stop: the
    evaluator treats the latest record up to a month's end as deciding, so the withdrawal month still
    bills and the months after do not. A withdrawal followed by a new consent before it took effect
    (same month) never took effect and is left out.
    """
    records = list(records)
    out: list[Consent] = []
    for r in records:
        if r.kind == ConsentKind.CONSENT:
            out.append(Consent(program=r.program, status="active", date=r.obtained_on, id=r.id,
                               source=FactSource.APP))
            continue
        effective = withdrawal_effective(r.obtained_on)
        moot = any(c.kind == ConsentKind.CONSENT and c.program == r.program and c.recorded_at > r.recorded_at
                   and r.obtained_on <= c.obtained_on < effective for c in records)
        if not moot:
            out.append(Consent(program=r.program, status="inactive", date=effective, id=r.id,
                               source=FactSource.APP))
    # On one day, a consent sorts after a withdrawal taking effect that day: it can only be a new consent.
    return tuple(sorted(out, key=lambda c: (c.date, c.status == "active")))


def mark_writeback(session: Session, consent_id: str, status: WritebackStatus, detail: str,
                   fhir_id: str | None = None, *, by: str = APP_ACTOR) -> ConsentRecord:
    """Note how writing the row to the EHR went; a known `fhir_id` is kept when none is given.

    A change is an audit event (a delivery, and the row's new digest); the same outcome again changes nothing.
    """
    if status not in tuple(WritebackStatus):
        raise ValueError(f"write-back status {status!r} is not one of {', '.join(WritebackStatus)}")
    row = session.get(ConsentRow, consent_id)
    if row is None:
        raise LedgerNotFound(f"No consent {consent_id!r}.", "Reload the page: the consent list may be out of date.")
    before = (row.writeback_status, row.writeback_detail, row.fhir_id)
    row.writeback_status = status
    row.writeback_detail = (detail or "")[:MAX_DETAIL_CHARS]
    if fhir_id is not None:
        row.fhir_id = fhir_id
    if (row.writeback_status, row.writeback_detail, row.fhir_id) != before:
        record_rows(session, [row], actor=by, action=CONSENT_WRITEBACK, subject=f"Consent/{row.id}",
                    organization_id=row.organization_id,
                    detail={"patient": row.patient_id, "status": status, "fhir_id": row.fhir_id})
    session.flush()
    return _to_records(session, [row])[0]
