"""Chronicity attestations: a clinician states that a condition the rules could not classify is (or is
not) chronic. Append-only; the latest statement about a condition wins."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.db import utcnow
from smart_app.ledger.audit import ATTESTATION_RECORDED
from smart_app.ledger.consents import check_person
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.errors import LedgerError
from smart_app.ledger.months import zone
from smart_app.ledger.records import AttestationRow
from smart_app.ledger.validation import MAX_NOTE_CHARS, refuse_nul
from smart_app.rules.facts import Attestation


class InvalidAttestation(LedgerError):
    """The attestation cannot be recorded as given."""

    title = "The attestation was not recorded"


@dataclass(frozen=True)
class AttestationRecord:
    """One attestation as stored; `attested_by` is a Practitioner or PractitionerRole reference."""

    id: str
    organization_id: str
    patient_id: str
    condition_id: str
    code: str
    chronic: bool
    attested_by: str
    attested_at: datetime
    note: str


def _record(row: AttestationRow) -> AttestationRecord:
    return AttestationRecord(row.id, row.organization_id, row.patient_id, row.condition_id, row.code, row.chronic,
                             row.attested_by, row.attested_at, row.note)


def record_attestation(session: Session, organization_id: str, patient_id: str, condition_id: str, code: str,
                       chronic: bool, by: str, note: str = "", now: datetime | None = None) -> AttestationRecord:
    """Record that condition `condition_id` (diagnosis `code`, may be "") is chronic or not."""
    if not organization_id or not patient_id:
        raise InvalidAttestation("The attestation names no organization or patient.",
                                 "Relaunch the app from the patient's chart.")
    if not isinstance(condition_id, str) or not condition_id.strip() or len(condition_id) > 200:
        raise InvalidAttestation("The attestation names no condition.",
                                 "Attest from the condition's row in the problem list.")
    code = (code or "").strip()
    if len(code) > 100:
        raise InvalidAttestation(f"The diagnosis code {code[:20]!r}... is too long.",
                                 "Attest from the condition's row in the problem list.")
    if not isinstance(chronic, bool):
        raise InvalidAttestation(f"Chronic must be yes or no; got {chronic!r}.",
                                 "Choose whether the condition is chronic.")
    try:
        check_person(by, "The attesting clinician,")
    except LedgerError as exc:
        raise InvalidAttestation(exc.message, exc.hint) from exc
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise InvalidAttestation(f"The note must be text of at most {MAX_NOTE_CHARS} characters.",
                                 "Shorten the note.")
    for value, what in ((note, "The note"), (condition_id, "The condition id"), (code, "The diagnosis code")):
        refuse_nul(value, what, InvalidAttestation)
    row = AttestationRow(id=str(uuid.uuid4()), organization_id=organization_id, patient_id=patient_id,
                         condition_id=condition_id.strip(), code=code, chronic=chronic, attested_by=by,
                         attested_at=now or utcnow(), note=note.strip())
    session.add(row)
    record_rows(session, [row], actor=by, action=ATTESTATION_RECORDED, subject=f"Condition/{row.condition_id}",
                organization_id=organization_id, now=row.attested_at,
                detail={"patient": patient_id, "chronic": chronic, "code": code, "attestation": row.id})
    return _record(row)


def attestation_history(session: Session, organization_id: str, patient_id: str) -> list[AttestationRecord]:
    """Every attestation about the patient, oldest first."""
    rows = session.scalars(select(AttestationRow).where(
        AttestationRow.organization_id == organization_id, AttestationRow.patient_id == patient_id,
    ).order_by(AttestationRow.attested_at, AttestationRow.id))
    return [_record(row) for row in rows]


def attestations_for(session: Session, organization_id: str, patient_id: str, *, as_of: date | None = None,
                     timezone: str = "UTC") -> tuple[Attestation, ...]:
    """The evaluator's attestations: the latest per condition (optionally only those made by `as_of`,
    dated on the organization's `timezone` calendar)."""
    tz = zone(timezone)
    latest: dict[str, Attestation] = {}
    for rec in attestation_history(session, organization_id, patient_id):
        day = rec.attested_at.astimezone(tz).date()
        if as_of is not None and day > as_of:
            continue
        latest[rec.condition_id] = Attestation(chronic=rec.chronic, by=rec.attested_by, date=day,
                                               condition_id=rec.condition_id, code=rec.code or None)
    return tuple(latest.values())
