"""What a replaced claim sent or queued: withdrawn before it leaves, marked retired once it has reached the EHR.

When a biller approves a corrected claim (version N replacing an approved N-1), the EHR must not end up
holding two live claims, two minutes records or two superbills for one patient-month, nor a completed Task
for time that was voided. For each resource the replaced versions queued:

- not sent yet (pending and not leased by a worker at this moment, or failed): withdrawn, never sent;
- delivered (done, with the EHR's id): an update of the same resource is queued with the status that
  retires it (`RETIRED_STATUS`: entered-in-error, or superseded for documents); the outbox sends it like any
  row, or records it as not accepted where the EHR takes no update of that type. The replaced Claim is
  updated only where the write-back plan allows Claim update.
- being sent by a worker right now: left alone; once it is done, the next delivery pass retires it
  (`months_to_sweep`, from `billing.delivery.deliver_pass`).

Which resources belong to a replaced version: the Claim (or ChargeItems), minutes and superbill resources of
any version other than the current approved one, and the activity Tasks (or Communications) of entries that
no longer count (voided, or amended into a new entry). An activity that still counts keeps its resource even
when the current claim does not cite it (the work happened); resources are identified per entry, so a new
version never sends them twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from smart_app.billing.fhir_resources import business_identifier, identifier_token, retired_copy
from smart_app.billing.models import ClaimRow, OutboxRow
from smart_app.billing.outbox import RETIRING, OutgoingResource, enqueue
from smart_app.db import utcnow
from smart_app.ledger.queries import patient_month
from smart_app.statuses import ClaimStatus, EntryKind, OutboxStatus

# Purposes whose resources belong to one claim version (their identifiers carry the version).
VERSIONED = ("claim", "minutes", "superbill")
RETIRED_STATUS = {"Claim": "entered-in-error", "ChargeItem": "entered-in-error", "Observation": "entered-in-error",
                  "Task": "entered-in-error", "Communication": "entered-in-error", "DocumentReference": "superseded"}
# Identifier kinds of the activity resources, per entry (billing.fhir_resources.activity_task and _communication).
_ACTIVITY_KINDS = ("activity", "activity-note")


@dataclass(frozen=True)
class Superseded:
    """What one pass did for a patient-month."""

    withdrawn: int = 0
    retiring: int = 0  # updates queued to retire delivered resources

    def sentence(self) -> str:
        """For the biller: what happened to the replaced version's write-back."""
        parts = []
        if self.withdrawn:
            parts.append(f"{self.withdrawn} unsent resource(s) of the replaced version withdrawn")
        if self.retiring:
            parts.append(f"{self.retiring} already in the EHR queued to be marked entered-in-error or superseded")
        return "; ".join(parts) + "." if parts else ""


def _current_claim(db: Session, organization_id: str, patient_id: str, month: str) -> ClaimRow | None:
    return db.scalars(select(ClaimRow).where(
        ClaimRow.organization_id == organization_id, ClaimRow.patient_id == patient_id, ClaimRow.month == month,
        ClaimRow.status == ClaimStatus.APPROVED).order_by(ClaimRow.version.desc()).limit(1)).first()


def _activities_no_longer_counting(db: Session, organization_id: str, patient_id: str, month: str) -> set[str]:
    """Outbox identifiers of the activity resources of the month's entries that were voided or amended."""
    gone = [e.id for e in patient_month(db, organization_id, patient_id, month).history
            if e.kind != EntryKind.VOID and not e.effective]
    return {identifier_token(business_identifier(kind, organization_id, entry_id))
            for entry_id in gone for kind in _ACTIVITY_KINDS}


def retirement(row: OutboxRow) -> OutgoingResource:
    """The update that retires a delivered resource: the same resource, its EHR id, the retiring status."""
    status = RETIRED_STATUS[row.resource_type]
    system, _, value = row.identifier.partition("|")
    return OutgoingResource(row.resource_type, RETIRING, system, f"{value}:{status}",
                            retired_copy(row.payload, status, row.fhir_id or ""))


def retired_identifier(identifier: str) -> str:
    """The outbox identifier of the resource that a retirement row (`retirement`) updates."""
    for status in set(RETIRED_STATUS.values()):
        if identifier.endswith(f":{status}"):
            return identifier.removesuffix(f":{status}")
    raise ValueError(f"{identifier!r} is not the identifier of a retirement")


def supersede(db: Session, organization_id: str, patient_id: str, month: str, *, can_update_claim: bool,
              now: datetime | None = None) -> Superseded:
    """Withdraw or retire what earlier versions of the patient-month's claim queued (see the module docstring).

    Idempotent: a withdrawn row is not looked at again and a retirement is enqueued once.
    """
    now = now or utcnow()
    current = _current_claim(db, organization_id, patient_id, month)
    if current is None:
        return Superseded()
    gone = _activities_no_longer_counting(db, organization_id, patient_id, month)
    rows = db.scalars(select(OutboxRow).where(
        OutboxRow.organization_id == organization_id, OutboxRow.patient_id == patient_id, OutboxRow.month == month,
        OutboxRow.purpose.in_((*VERSIONED, "activity")),
        OutboxRow.status.in_((OutboxStatus.PENDING, OutboxStatus.FAILED, OutboxStatus.DONE)))
        .order_by(OutboxRow.created_at, OutboxRow.id)).all()
    withdrawn, retiring = 0, []
    for row in rows:
        if "id" in (row.payload or {}):
            continue  # an update, not a resource of its own
        stale = row.claim_id != current.id if row.purpose in VERSIONED else row.identifier in gone
        if not stale:
            continue
        if row.status in (OutboxStatus.PENDING, OutboxStatus.FAILED):
            if row.status == OutboxStatus.PENDING and row.leased_until is not None and row.leased_until > now:
                continue  # a worker is sending it right now; the next delivery pass retires it
            row.status, row.leased_until, row.updated_at = OutboxStatus.WITHDRAWN, None, now
            row.last_error = (
                "Not sent: the time entry it records was voided or corrected." if row.purpose == "activity"
                else f"Not sent: version {current.version} of this patient-month's claim replaced the version it "
                     "belonged to.")
            withdrawn += 1
        elif row.fhir_id and (row.resource_type != "Claim" or can_update_claim):
            retiring.append(retirement(row))
    # Queued just after the new version's rows, so the new claim goes out first.
    queued = enqueue(db, organization_id=organization_id, claim_id=current.id, patient_id=patient_id, month=month,
                     resources=retiring, now=now + timedelta(milliseconds=1)) if retiring else 0
    return Superseded(withdrawn, queued)


def months_to_sweep(db: Session, organization_id: str, *, can_update_claim: bool) -> list[tuple[str, str]]:
    """Patient-months with a replaced claim whose versioned resources were delivered but not yet retired.

    What a worker was sending while the correction was approved ends up here once it is done.
    """
    retired = aliased(OutboxRow)
    retirement_of = or_(*(retired.identifier == OutboxRow.identifier + ":" + status
                          for status in sorted(set(RETIRED_STATUS.values()))))
    query = (select(OutboxRow.patient_id, OutboxRow.month).distinct()
             .join(ClaimRow, ClaimRow.id == OutboxRow.claim_id)
             .where(OutboxRow.organization_id == organization_id, ClaimRow.status == ClaimStatus.REPLACED,
                    OutboxRow.purpose.in_(VERSIONED), OutboxRow.status == OutboxStatus.DONE,
                    OutboxRow.fhir_id.is_not(None),
                    ~exists().where(and_(retired.organization_id == OutboxRow.organization_id, retirement_of))))
    if not can_update_claim:
        query = query.where(OutboxRow.resource_type != "Claim")
    return [(patient_id, month) for patient_id, month in db.execute(query)]
