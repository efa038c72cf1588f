"""Storing proposed claims as versions: a re-run that changes nothing writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.billing.models import ClaimRow
from smart_app.billing.proposal import content_digest
from smart_app.billing.values import ProposedClaim
from smart_app.db import utcnow
from smart_app.ledger.audit import APP_ACTOR, CLAIMS_PROPOSED
from smart_app.ledger.coverage import record_rows
from smart_app.statuses import ClaimStatus

# Versions a new one replaces outright; an approved version stays as the record of what was sent.
REPLACEABLE = (ClaimStatus.PROPOSED, ClaimStatus.HELD, ClaimStatus.NOTHING_BILLABLE)


@dataclass(frozen=True)
class StoredClaim:
    """A claim version as the biller sees it."""

    id: str
    organization_id: str
    patient_id: str
    month: str
    version: int
    status: ClaimStatus
    claim: ProposedClaim
    created_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str
    reviewed_by_name: str | None = None

    @property
    def reviewer(self) -> str | None:
        """Who reviewed it, by name where known."""
        return self.reviewed_by_name or self.reviewed_by


def to_stored(row: ClaimRow) -> StoredClaim:
    """The value form of a claim row."""
    return StoredClaim(row.id, row.organization_id, row.patient_id, row.month, row.version, row.status,
                       ProposedClaim.from_json(row.content), row.created_at, row.reviewed_by, row.reviewed_at,
                       row.review_note or "", row.reviewed_by_name)


def latest_version(db: Session, organization_id: str, patient_id: str, month: str) -> ClaimRow | None:
    """The newest version of a patient-month's claim."""
    return db.scalars(select(ClaimRow).where(
        ClaimRow.organization_id == organization_id, ClaimRow.patient_id == patient_id, ClaimRow.month == month)
        .order_by(ClaimRow.version.desc()).limit(1)).first()


def store_claim(db: Session, claim: ProposedClaim, now: datetime | None = None, *,
                by: str = APP_ACTOR) -> tuple[str, ClaimRow]:
    """Save the claim if it differs from the newest version: ("unchanged" | "new", row); a new one is audited."""
    changed: list[ClaimRow] = []
    outcome, row = store_version(db, claim, latest_version(db, claim.organization_id, claim.patient_id, claim.month),
                                 now or utcnow(), changed)
    record_versions(db, changed, by=by, organization_id=claim.organization_id, month=claim.month)
    db.flush()
    return outcome, row


def store_version(db: Session, claim: ProposedClaim, latest: ClaimRow | None, now: datetime,
                  changed: list[ClaimRow]) -> tuple[str, ClaimRow]:
    """`store_claim` with the newest version already read (the rollup reads a batch's at once); not flushed, not
    audited: the rows written or superseded are added to `changed` for one audit event (`record_versions`)."""
    content = claim.to_json()
    digest = content_digest(content)
    if latest is not None and latest.content_hash == digest:
        return "unchanged", latest
    if latest is not None and latest.status in REPLACEABLE:
        latest.status = ClaimStatus.SUPERSEDED
        changed.append(latest)
    row = ClaimRow(id=str(uuid.uuid4()), organization_id=claim.organization_id, patient_id=claim.patient_id,
                   month=claim.month, version=(latest.version + 1) if latest else 1,
                   status=ClaimStatus.PROPOSED if claim.billable else ClaimStatus.NOTHING_BILLABLE, content=content,
                   content_hash=digest, created_at=now, review_note="")
    db.add(row)
    changed.append(row)
    return "new", row


def record_versions(db: Session, rows: Sequence[ClaimRow], *, by: str, organization_id: str, month: str) -> None:
    """The audit event of new claim versions (and of the versions they superseded), covering every row."""
    if not rows:
        return
    record_rows(db, rows, actor=by, action=CLAIMS_PROPOSED, subject=f"Claims/{month}", organization_id=organization_id,
                detail={"month": month, "versions": [[r.patient_id, r.version, r.status] for r in rows]})


def month_claims(db: Session, organization_id: str, month: str) -> list[StoredClaim]:
    """The newest version of every patient's claim in a month, plus approved versions a newer one replaces."""
    rows = db.scalars(select(ClaimRow).where(ClaimRow.organization_id == organization_id, ClaimRow.month == month)
                      .order_by(ClaimRow.patient_id, ClaimRow.version.desc())).all()
    newest: dict[str, ClaimRow] = {}
    for row in rows:
        newest.setdefault(row.patient_id, row)
    return [to_stored(row) for row in sorted(newest.values(), key=lambda r: (r.content.get("patient_name") or "",
                                                                              r.patient_id))]


def approved_before(db: Session, claim: StoredClaim) -> StoredClaim | None:
    """The newest approved version older than this one (the claim a correction replaces)."""
    row = db.scalars(select(ClaimRow).where(
        ClaimRow.organization_id == claim.organization_id, ClaimRow.patient_id == claim.patient_id,
        ClaimRow.month == claim.month, ClaimRow.version < claim.version, ClaimRow.status == ClaimStatus.APPROVED)
        .order_by(ClaimRow.version.desc()).limit(1)).first()
    return to_stored(row) if row else None


def claim_patient(db: Session, organization_id: str, claim_id: str) -> str:
    """Who a claim is for, as the biller reads it (name, else patient id; the claim id when there is no such claim)."""
    row = db.get(ClaimRow, claim_id)
    if row is None or row.organization_id != organization_id:
        return f"claim {claim_id}"
    return to_stored(row).claim.patient_name or row.patient_id
