"""Enrollment beyond consent: a program offered to the patient, declined (date and reason) or not a candidate
(reason), kept per patient and program; append-only and audited. Consent itself stays in `consents`.

The current status of a program is derived, never stored: the latest of the enrollment events, the app's consents
and withdrawals and the EHR's consents, by date (ties: the later recorded). A consent in force (active in the EHR,
or recorded in the app and not withdrawn) always makes the patient enrolled, since the rules bill on it; so a
consent recorded after a decline makes the patient enrolled, and a decline cannot be recorded over an app consent
(the withdrawal comes first).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import transaction, utcnow
from smart_app.ledger.audit import ENROLLMENT_RECORDED
from smart_app.ledger.consents import CONSENT_PROGRAMS, MAX_CONSENT_AGE_YEARS, ConsentRecord, check_person
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.errors import LedgerError
from smart_app.ledger.months import zone
from smart_app.ledger.records import ConsentRow, EnrollmentRow
from smart_app.ledger.validation import program_label, refuse_nul
from smart_app.ledger.writelock import hold_consents
from smart_app.rules.facts import Consent
from smart_app.statuses import ConsentKind, EnrollmentKind, EnrollmentStatus

# Programs a patient is enrolled in by consent; TCM is billed per discharge and takes no enrollment.
ENROLLMENT_PROGRAMS = CONSENT_PROGRAMS
MAX_REASON_CHARS = 500
NEEDS_REASON = frozenset({EnrollmentKind.DECLINED, EnrollmentKind.NOT_CANDIDATE})
# Statuses under which the consent form does not offer the program by default (the person may still record one).
NOT_OFFERED = frozenset({EnrollmentStatus.DECLINED, EnrollmentStatus.NOT_CANDIDATE, EnrollmentStatus.ENROLLED})
# FHIR Consent.status of the EHR's consents as an enrollment status; draft and entered-in-error say nothing.
_EHR_STATUS = {"active": EnrollmentStatus.ENROLLED, "inactive": EnrollmentStatus.WITHDRAWN,
               "rejected": EnrollmentStatus.DECLINED, "proposed": EnrollmentStatus.OFFERED}
_STATUS_LABELS = {EnrollmentStatus.ENROLLED: "enrolled", EnrollmentStatus.WITHDRAWN: "withdrawn",
                  EnrollmentStatus.DECLINED: "declined", EnrollmentStatus.NOT_CANDIDATE: "not a candidate",
                  EnrollmentStatus.OFFERED: "offered", EnrollmentStatus.NONE: "not yet offered"}
_EVENT_STATUS = {EnrollmentKind.OFFERED: EnrollmentStatus.OFFERED, EnrollmentKind.DECLINED: EnrollmentStatus.DECLINED,
                 EnrollmentKind.NOT_CANDIDATE: EnrollmentStatus.NOT_CANDIDATE}
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def status_label(status: EnrollmentStatus | str) -> str:
    """The status as pages say it ("not a candidate", "not yet offered")."""
    return _STATUS_LABELS.get(EnrollmentStatus(status), str(status))


class InvalidEnrollment(LedgerError):
    """The enrollment event cannot be recorded as given; the message names what to fix."""

    title = "Not recorded"


class AlreadyEnrolled(LedgerError):
    """The patient has a consent in force for the program: an offer or a decline would contradict it."""

    title = "The patient is enrolled"
    status_code = 409


@dataclass(frozen=True)
class EnrollmentRecord:
    """One enrollment event as stored; `recorded_by` is a Practitioner or PractitionerRole reference."""

    id: str
    organization_id: str
    patient_id: str
    program: str
    kind: EnrollmentKind
    on: date
    reason: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True)
class Mark:
    """One dated step of a program's enrollment, from an event, an app consent or withdrawal, or the EHR."""

    program: str
    status: EnrollmentStatus
    on: date
    by: str
    source: str  # "app" | "EHR"
    at: datetime | None = None  # when it was recorded (the EHR's: unknown)
    reason: str = ""
    holds: bool = False  # a consent in force


@dataclass(frozen=True)
class ProgramEnrollment:
    """Where a patient stands in one program, and the step that says so."""

    program: str
    status: EnrollmentStatus
    on: date | None = None
    by: str = ""
    source: str = ""
    reason: str = ""
    # Set when a later step disagrees with a consent in force (an EHR consent the app cannot end).
    note: str = ""

    @property
    def label(self) -> str:
        """The status in words."""
        return status_label(self.status)

    @property
    def offered_consent(self) -> bool:
        """Whether the consent form offers the program by default (not declined, not a candidate, not enrolled)."""
        return self.status not in NOT_OFFERED


def _record(row: EnrollmentRow) -> EnrollmentRecord:
    return EnrollmentRecord(row.id, row.organization_id, row.patient_id, row.program, EnrollmentKind(row.kind),
                            row.on_date, row.reason, row.recorded_by, row.recorded_at)


def _today(now: datetime, timezone: str | None) -> date:
    # Without the organization's zone, the latest calendar date anywhere (UTC+14): today is never "future".
    if timezone:
        return now.astimezone(zone(timezone)).date()
    return (now.astimezone(UTC) + timedelta(hours=14)).date()


def _check(program: str, kind: str, on: object, reason: object, today: date) -> tuple[EnrollmentKind, date, str]:
    if program == "tcm":
        raise InvalidEnrollment("Transitional care management (TCM) is not a time-based program a patient enrolls "
                                "in; it is billed per discharge.",
                                "Record offers and declines for CCM, PCM, BHI, CoCM or APCM.")
    if program not in ENROLLMENT_PROGRAMS:
        choices = ", ".join(program_label(p) for p in ENROLLMENT_PROGRAMS)
        raise InvalidEnrollment(f"Unknown program {str(program)[:20]!r}.", f"Choose one of: {choices}.")
    try:
        what = EnrollmentKind(kind)
    except ValueError:
        raise InvalidEnrollment(f"{str(kind)[:20]!r} is not an enrollment status the app records.",
                                "Choose offered, declined or not a candidate.") from None
    if isinstance(on, datetime) or not isinstance(on, date):
        raise InvalidEnrollment(f"The date is missing or not a calendar date ({on!r}).",
                                "Enter the date as YYYY-MM-DD.")
    if on > today:
        raise InvalidEnrollment(f"The date {on.isoformat()} is in the future.",
                                "Record it once it happened, with the day it happened.")
    if on < today - timedelta(days=round(365.25 * MAX_CONSENT_AGE_YEARS)):
        raise InvalidEnrollment(f"The date {on.isoformat()} is more than {MAX_CONSENT_AGE_YEARS} years ago.",
                                "Check the year.")
    if not isinstance(reason, str):
        raise InvalidEnrollment("The reason must be text.", "Type the reason again.")
    refuse_nul(reason, "The reason", InvalidEnrollment)
    reason = reason.strip()
    if what in NEEDS_REASON and not reason:
        said = "declined" if what is EnrollmentKind.DECLINED else "is not a candidate"
        raise InvalidEnrollment(f"Say why the patient {said} ({program_label(program)}).",
                                'Enter the reason, e.g. "cost sharing", "hospice" or "receives CCM elsewhere".')
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidEnrollment(f"The reason is {len(reason)} characters long; the limit is {MAX_REASON_CHARS}.",
                                "Shorten it; put details in a note in the chart.")
    return what, on, reason


def record_enrollment(session: Session, organization_id: str, patient_id: str, program: str, kind: str, *,
                      on: date, by: str, reason: str = "", now: datetime | None = None,
                      timezone: str | None = None) -> EnrollmentRecord:
    """Record that a program was offered, declined or is not for the patient; audited in the caller's transaction.

    Refused (AlreadyEnrolled) while a consent recorded in the app for the program is in force.
    """
    now = now or utcnow()
    if not organization_id or not patient_id:
        raise InvalidEnrollment("The event names no organization or patient.",
                                "Relaunch the app from the patient's chart.")
    try:
        check_person(by, "The person recording it,")
    except LedgerError as exc:
        raise InvalidEnrollment(exc.message, exc.hint) from exc
    what, on, reason = _check(program, kind, on, reason, _today(now, timezone))
    # The same hold as consents: a consent recorded at this moment in another tab is seen, or sees this.
    hold_consents(session, organization_id, patient_id, program)
    held = _app_marks(session.scalars(select(ConsentRow).where(
        ConsentRow.organization_id == organization_id, ConsentRow.patient_id == patient_id,
        ConsentRow.program == program)))
    in_force = [m for m in held if m.holds]
    if in_force:
        label = program_label(program)
        raise AlreadyEnrolled(
            f"The patient consented to {label} on {in_force[0].on.isoformat()} and that consent is in force.",
            f"If the patient wants to stop, record the withdrawal of the {label} consent first.")
    row = EnrollmentRow(id=str(uuid.uuid4()), organization_id=organization_id, patient_id=patient_id,
                        program=program, kind=what, on_date=on, reason=reason, recorded_by=by, recorded_at=now)
    session.add(row)
    record_rows(session, [row], actor=by, action=ENROLLMENT_RECORDED, subject=f"Patient/{patient_id}",
                organization_id=organization_id, now=now,
                detail={"patient": patient_id, "program": program, "status": what.value, "on": on.isoformat(),
                        "event": row.id})
    return _record(row)


def enrollment_history(session: Session, organization_id: str, patient_id: str) -> list[EnrollmentRecord]:
    """Every enrollment event of the patient, oldest recorded first."""
    rows = session.scalars(select(EnrollmentRow).where(
        EnrollmentRow.organization_id == organization_id, EnrollmentRow.patient_id == patient_id,
    ).order_by(EnrollmentRow.recorded_at, EnrollmentRow.id))
    return [_record(row) for row in rows]


def read_history(sessions: sessionmaker[Session], organization_id: str, patient_id: str) -> list[EnrollmentRecord]:
    """`enrollment_history` in a transaction of its own (for a page, in the thread pool)."""
    with transaction(sessions) as db:
        return enrollment_history(db, organization_id, patient_id)


# -- the derived status (pure) ----------------------------------------------------------------------------------

def event_marks(events: Iterable[EnrollmentRecord]) -> list[Mark]:
    """Enrollment events as steps."""
    return [Mark(e.program, _EVENT_STATUS[e.kind], e.on, e.recorded_by, "app", e.recorded_at, e.reason)
            for e in events]


def app_consent_marks(records: Iterable[ConsentRecord]) -> list[Mark]:
    """The app's consents (enrolled; in force until withdrawn) and withdrawals (withdrawn, on the day asked)."""
    out = []
    for r in records:
        if r.kind == ConsentKind.CONSENT:
            out.append(Mark(r.program, EnrollmentStatus.ENROLLED, r.obtained_on, r.obtained_by, "app", r.recorded_at,
                            holds=r.active))
        else:
            out.append(Mark(r.program, EnrollmentStatus.WITHDRAWN, r.obtained_on, r.obtained_by, "app",
                            r.recorded_at))
    return out


def ehr_consent_marks(consents: Iterable[Consent]) -> list[Mark]:
    """The EHR's consents (not those the app wrote): active is enrolled, inactive withdrawn, rejected declined,
    proposed offered; other statuses say nothing."""
    return [Mark(c.program, _EHR_STATUS[c.status], c.date, "in the EHR", "EHR", holds=c.status == "active")
            for c in consents if c.status in _EHR_STATUS]


def program_status(program: str, marks: Iterable[Mark]) -> ProgramEnrollment:
    """The program's current status: a consent in force makes it enrolled; otherwise the latest step decides."""
    mine = sorted((m for m in marks if m.program == program), key=lambda m: (m.on, m.at or _EARLIEST))
    if not mine:
        return ProgramEnrollment(program, EnrollmentStatus.NONE)
    latest = mine[-1]
    holding = [m for m in mine if m.holds]
    if holding:
        consent = holding[-1]
        note = ""
        if latest.status is not EnrollmentStatus.ENROLLED and not latest.holds:
            note = (f"{status_label(latest.status).capitalize()} on {latest.on.isoformat()}, but the consent "
                    f"{'in the EHR' if consent.source == 'EHR' else 'recorded in the app'} is still in force; "
                    "it counts until it is ended there.")
        return ProgramEnrollment(program, EnrollmentStatus.ENROLLED, consent.on, consent.by, consent.source, "", note)
    return ProgramEnrollment(program, latest.status, latest.on, latest.by, latest.source, latest.reason)


def enrollment_statuses(programs: Sequence[str], marks: Iterable[Mark]) -> tuple[ProgramEnrollment, ...]:
    """Each program's status, in the order given."""
    marks = list(marks)
    return tuple(program_status(p, marks) for p in programs)


# -- many patients at once (the panel) ---------------------------------------------------------------------------

def _app_marks(rows: Iterable[Any]) -> list[Mark]:
    """Steps of one patient's consent rows (ORM rows or `_CONSENT_COLUMNS` tuples)."""
    rows = list(rows)
    withdrawn = {r.withdraws_id for r in rows if r.withdraws_id}
    return [Mark(r.program, EnrollmentStatus.ENROLLED if r.kind == ConsentKind.CONSENT else EnrollmentStatus.WITHDRAWN,
                 r.obtained_on, r.obtained_by, "app", r.recorded_at,
                 holds=r.kind == ConsentKind.CONSENT and r.id not in withdrawn) for r in rows]


# Only what a status needs, as plain tuples: the panel reads every consent of the organization.
_CONSENT_COLUMNS = (ConsentRow.id, ConsentRow.patient_id, ConsentRow.program, ConsentRow.kind, ConsentRow.obtained_on,
                    ConsentRow.obtained_by, ConsentRow.recorded_at, ConsentRow.withdraws_id)


def app_marks_for(session: Session, organization_id: str,
                  patient_ids: Iterable[str] | None) -> dict[str, list[Mark]]:
    """The app's enrollment events, consents and withdrawals of many patients (None: every patient of the
    organization, in two statements), as steps per patient; two statements per 500 patients named."""
    chunks: list[list[str] | None] = [None]
    if patient_ids is not None:
        ids = sorted(set(patient_ids))
        chunks = [ids[start:start + 500] for start in range(0, len(ids), 500)]
    out: dict[str, list[Mark]] = defaultdict(list)
    for chunk in chunks:
        events = select(EnrollmentRow).where(EnrollmentRow.organization_id == organization_id)
        kept = select(*_CONSENT_COLUMNS).where(ConsentRow.organization_id == organization_id)
        if chunk is not None:
            events = events.where(EnrollmentRow.patient_id.in_(chunk))
            kept = kept.where(ConsentRow.patient_id.in_(chunk))
        for row in session.scalars(events):
            out[row.patient_id].extend(event_marks([_record(row)]))
        consents: dict[str, list[Any]] = defaultdict(list)
        for consent in session.execute(kept):
            consents[consent.patient_id].append(consent)
        for patient_id, rows in consents.items():
            out[patient_id].extend(_app_marks(rows))
    return dict(out)
