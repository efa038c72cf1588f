"""Facts the care team records in the app for the rules, where the EHR has no element the app can read:
TCM's medication reconciliation and contact attempts, a CoCM episode start, QMB status, a condition's high-risk
judgement, a care plan on file. Append-only and audited; for each kind and subject the latest statement wins
(contact attempts add up). The EHR's own facts are kept; these complete them."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.db import utcnow
from smart_app.ledger.audit import EVIDENCE_RECORDED
from smart_app.ledger.consents import check_person
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.errors import LedgerError
from smart_app.ledger.records import EvidenceRow
from smart_app.ledger.validation import MAX_NOTE_CHARS, refuse_nul
from smart_app.rules.facts import CarePlan, Episode, PatientFacts
from smart_app.statuses import EvidenceKind

# Kinds that need a date, and kinds about one subject (a discharge's Encounter id, a condition's id).
DATED = frozenset({EvidenceKind.TCM_MEDICATION_RECONCILIATION, EvidenceKind.TCM_CONTACT_ATTEMPT,
                   EvidenceKind.COCM_EPISODE_START, EvidenceKind.CARE_PLAN})
FLAGGED = frozenset({EvidenceKind.QMB_STATUS, EvidenceKind.CONDITION_HIGH_RISK})
ABOUT = {EvidenceKind.TCM_MEDICATION_RECONCILIATION: "discharge", EvidenceKind.TCM_CONTACT_ATTEMPT: "discharge",
         EvidenceKind.CONDITION_HIGH_RISK: "condition"}


class InvalidEvidence(LedgerError):
    """The fact cannot be recorded as given."""

    title = "Not recorded"


@dataclass(frozen=True)
class EvidenceRecord:
    """One recorded fact as stored; `recorded_by` is a Practitioner or PractitionerRole reference."""

    id: str
    organization_id: str
    patient_id: str
    kind: EvidenceKind
    subject: str
    on_date: date | None
    flag: bool | None
    recorded_by: str
    recorded_at: datetime
    note: str


def _record(row: EvidenceRow) -> EvidenceRecord:
    return EvidenceRecord(row.id, row.organization_id, row.patient_id, EvidenceKind(row.kind), row.subject,
                          row.on_date, row.flag, row.recorded_by, row.recorded_at, row.note)


def record_evidence(session: Session, organization_id: str, patient_id: str, kind: str, *, by: str,
                    subject: str = "", on: date | None = None, flag: bool | None = None, note: str = "",
                    today: date | None = None, now: datetime | None = None) -> EvidenceRecord:
    """Record one fact for the rules, attributed to `by` and audited in the caller's transaction."""
    if not organization_id or not patient_id:
        raise InvalidEvidence("The fact names no organization or patient.",
                              "Relaunch the app from the patient's chart.")
    try:
        what = EvidenceKind(kind)
    except ValueError:
        raise InvalidEvidence(f"{kind!r} is not something the app records.",
                              "Use the forms on the patient page.") from None
    try:
        check_person(by, "The person recording it,")
    except LedgerError as exc:
        raise InvalidEvidence(exc.message, exc.hint) from exc
    subject = (subject or "").strip()
    if what in ABOUT and not subject:
        raise InvalidEvidence(f"Say which {ABOUT[what]} it is about.", f"Pick the {ABOUT[what]} from the list.")
    if len(subject) > 200:
        raise InvalidEvidence("The subject is too long.", "Pick it from the list on the patient page.")
    if what in DATED:
        if on is None:
            raise InvalidEvidence("A date is needed.", "Enter the date it was done.")
        if today is not None and on > today:
            raise InvalidEvidence(f"The date {on.isoformat()} is in the future.",
                                  "Record it once it was done, with the date it was done.")
    elif on is not None:
        raise InvalidEvidence("This fact takes no date.", "Leave the date empty.")
    if what in FLAGGED and not isinstance(flag, bool):
        raise InvalidEvidence("Answer yes or no.", "Choose yes or no.")
    if what not in FLAGGED and flag is not None:
        raise InvalidEvidence("This fact takes no yes or no.", "Leave it out.")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise InvalidEvidence(f"The note must be text of at most {MAX_NOTE_CHARS} characters.", "Shorten the note.")
    for value, label in ((note, "The note"), (subject, "The subject")):
        refuse_nul(value, label, InvalidEvidence)
    row = EvidenceRow(id=str(uuid.uuid4()), organization_id=organization_id, patient_id=patient_id, kind=what,
                      subject=subject, on_date=on, flag=flag, recorded_by=by, recorded_at=now or utcnow(),
                      note=note.strip())
    session.add(row)
    record_rows(session, [row], actor=by, action=EVIDENCE_RECORDED, subject=f"Patient/{patient_id}",
                organization_id=organization_id, now=row.recorded_at,
                detail={"patient": patient_id, "kind": what.value, "about": subject,
                        "date": on.isoformat() if on else None, "value": flag, "evidence": row.id})
    return _record(row)


def evidence_history(session: Session, organization_id: str, patient_id: str) -> list[EvidenceRecord]:
    """Every fact recorded for the patient, oldest first."""
    rows = session.scalars(select(EvidenceRow).where(
        EvidenceRow.organization_id == organization_id, EvidenceRow.patient_id == patient_id,
    ).order_by(EvidenceRow.recorded_at, EvidenceRow.id))
    return [_record(row) for row in rows]


def _same(reference: str | None, subject: str) -> bool:
    """A discharge or condition id as the facts carry it, against the one recorded ("Encounter/x" or "x")."""
    if not reference:
        return False
    return reference == subject or reference.rsplit("/", 1)[-1] == subject.rsplit("/", 1)[-1]


def with_evidence(facts: PatientFacts, records: Iterable[EvidenceRecord]) -> PatientFacts:
    """The facts completed with what the care team recorded: what the EHR says is kept, the app's fills its gaps
    (a reconciliation date, QMB status), adds to it (contact attempts, an episode start, a care plan) or, for a
    clinician's high-risk judgement, states it. Pure."""
    latest: dict[tuple[EvidenceKind, str], EvidenceRecord] = {}
    attempts: list[EvidenceRecord] = []
    for record in records:
        if record.kind is EvidenceKind.TCM_CONTACT_ATTEMPT:
            attempts.append(record)
        else:
            latest[(record.kind, record.subject)] = record
    discharges = []
    for discharge in facts.discharges:
        med = latest.get((EvidenceKind.TCM_MEDICATION_RECONCILIATION, discharge.id or ""))
        med = med or next((r for (k, s), r in latest.items()
                           if k is EvidenceKind.TCM_MEDICATION_RECONCILIATION and _same(discharge.id, s)), None)
        tried = tuple(r.on_date for r in attempts if _same(discharge.id, r.subject) and r.on_date)
        discharges.append(dataclasses.replace(
            discharge, medication_reconciliation_date=discharge.medication_reconciliation_date
            or (med.on_date if med else None),
            contact_attempts=tuple(sorted(set(discharge.contact_attempts + tried)))))
    conditions = []
    for condition in facts.conditions:
        judged = next((r for (k, s), r in latest.items()
                       if k is EvidenceKind.CONDITION_HIGH_RISK and _same(condition.id, s)), None)
        conditions.append(dataclasses.replace(condition, high_risk=judged.flag is True) if judged else condition)
    episodes = facts.episodes + tuple(Episode("cocm", r.on_date, id=r.id) for (k, _), r in latest.items()
                                      if k is EvidenceKind.COCM_EPISODE_START and r.on_date)
    plans = facts.care_plans + tuple(CarePlan("active", r.on_date, id=r.id) for (k, _), r in latest.items()
                                     if k is EvidenceKind.CARE_PLAN and r.on_date)
    qmb = latest.get((EvidenceKind.QMB_STATUS, ""))
    return dataclasses.replace(facts, discharges=tuple(discharges), conditions=tuple(conditions), episodes=episodes,
                               care_plans=plans, qmb=facts.qmb if facts.qmb is not None or qmb is None else qmb.flag)
