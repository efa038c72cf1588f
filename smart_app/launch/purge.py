"""Deleting what has expired: pending launches, ended sessions and stale EHR metadata.

Anyone may start a launch, so `pending_launches` would grow without end; sessions end after their lifetime
but their rows (encrypted tokens included) stayed. `purge_expired` runs at the start of `smart-app serve` and
`smart-app demo`, and as `smart-app purge` (schedule it, e.g. hourly, beside a long-running server).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import rows_changed, transaction, utcnow
from smart_app.launch.ehr_metadata import purge_metadata
from smart_app.launch.flow import PENDING_LIFETIME
from smart_app.launch.models import AppSession, PendingLaunch


@dataclass(frozen=True)
class Purged:
    """How many rows of each kind were deleted."""

    pending_launches: int
    sessions: int
    ehr_metadata: int

    def sentence(self) -> str:
        """One line for the operator."""
        return (f"Deleted {self.pending_launches} expired pending launch(es), {self.sessions} ended session(s) and "
                f"{self.ehr_metadata} stale EHR metadata entr{'y' if self.ehr_metadata == 1 else 'ies'}.")


def purge_expired(sessions: sessionmaker[Session], now: datetime | None = None) -> Purged:
    """Delete pending launches past their lifetime (used or not), ended sessions and expired EHR metadata."""
    now = now or utcnow()
    with transaction(sessions) as db:
        # A callback is refused after PENDING_LIFETIME anyway (flow._consume), so nothing still needs these rows.
        pending = rows_changed(db.execute(delete(PendingLaunch).where(
            PendingLaunch.created_at <= now - PENDING_LIFETIME)))
        ended = rows_changed(db.execute(delete(AppSession).where(AppSession.expires_at <= now)))
        metadata = purge_metadata(db, now)
    return Purged(pending, ended, metadata)
