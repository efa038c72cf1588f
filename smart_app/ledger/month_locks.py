"""Month locks: once a month is written back to the EHR, later entries in it are accepted but flagged late."""

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
    return MonthLock(row.organization_id, row.month, row.locked_by, row.locked_at)


def get_lock(session: Session, organization_id: str, month: str) -> MonthLock | None:
    """The lock of an organization's month, or None while it is open."""
    row = session.get(MonthLockRow, (organization_id, month))
    return _value(row) if row else None


def is_locked(session: Session, organization_id: str, month: str) -> bool:
    """Whether the month has been written back (and so closed to on-time entries)."""
    found = session.scalar(select(MonthLockRow.month).where(
        MonthLockRow.organization_id == organization_id, MonthLockRow.month == month))
    return found is not None


def lock_month(session: Session, organization_id: str, month: str, by: str,
               *, now: datetime | None = None) -> MonthLock:
    """Lock a month after write-back; locking a locked month returns the first lock unchanged."""
    Month.parse(month)
    hold_month(session, organization_id, month)
    existing = get_lock(session, organization_id, month)
    if existing:
        return existing
    row = MonthLockRow(organization_id=organization_id, month=month, locked_by=by, locked_at=now or utcnow())
    session.add(row)
    session.flush()
    return _value(row)


def lock_message(month: str) -> str:
    """The sentence the UI shows beside a late entry."""
    return (f"{Month.parse(month).label} was already sent to the EHR, so this time is recorded as a late entry "
            "and flagged for the biller.")
