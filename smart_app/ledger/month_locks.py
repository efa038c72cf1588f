"""Month locks per claim: once a patient's claim for a month is approved (and queued for the EHR), later entries
in that patient-month are accepted but flagged late. Other patients' months stay open."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.db import utcnow
from smart_app.ledger.models import MonthLockRow
from smart_app.ledger.months import Month
from smart_app.ledger.values import MonthLock
from smart_app.ledger.writelock import hold_month


def _value(row: MonthLockRow) -> MonthLock:
    return MonthLock(row.organization_id, row.patient_id, row.month, row.locked_by, row.locked_at)


def get_lock(session: Session, organization_id: str, patient_id: str, month: str) -> MonthLock | None:
    """The lock of a patient-month, or None while it is open."""
    row = session.get(MonthLockRow, (organization_id, patient_id, month))
    return _value(row) if row else None


def is_locked(session: Session, organization_id: str, patient_id: str, month: str) -> bool:
    """Whether the patient's claim for the month was approved (so new time there is late)."""
    found = session.scalar(select(MonthLockRow.month).where(
        MonthLockRow.organization_id == organization_id, MonthLockRow.patient_id == patient_id,
        MonthLockRow.month == month))
    return found is not None


def lock_month(session: Session, organization_id: str, patient_id: str, month: str, by: str,
               *, now: datetime | None = None) -> MonthLock:
    """Lock a patient-month when its claim is approved; locking it again returns the first lock unchanged."""
    Month.parse(month)
    # Entry writers hold the month shared: they either finish before this lock or see it.
    hold_month(session, organization_id, month)
    existing = get_lock(session, organization_id, patient_id, month)
    if existing:
        return existing
    row = MonthLockRow(organization_id=organization_id, patient_id=patient_id, month=month, locked_by=by,
                       locked_at=now or utcnow())
    session.add(row)
    session.flush()
    return _value(row)


def lock_message(month: str) -> str:
    """The sentence the UI shows beside a late entry: why, and what happens to the time."""
    return (f"This patient's claim for {Month.parse(month).label} was already approved, so this time is recorded "
            "as a late entry and flagged for the biller: where it changes what can be billed, the next rollup "
            "proposes a corrected claim that includes it.")
