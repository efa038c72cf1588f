"""Tables of the billing room: proposed claims (versioned), the write-back outbox, a cache of EHR
facts for unattended rollups, rate-limit counters, the batches of a rollup and scheduled jobs' runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smart_app.db import Base, StrEnumType, UTCDateTime, enum_check
from smart_app.statuses import ClaimStatus, OutboxStatus, RollupBatchStatus


class ClaimRow(Base):
    """One version of a patient-month's claim; a re-run that changes nothing adds no version."""

    __tablename__ = "claims"
    __table_args__ = (
        UniqueConstraint("organization_id", "patient_id", "month", "version", name="uq_claims_version"),
        Index("ix_claims_org_month", "organization_id", "month"),
        enum_check("status", ClaimStatus, "ck_claims_status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    month: Mapped[str] = mapped_column(String(7))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[ClaimStatus] = mapped_column(StrEnumType(ClaimStatus, 20))
    content: Mapped[dict] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reviewed_by: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reviewed_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    review_note: Mapped[str] = mapped_column(Text, default="")


class OutboxRow(Base):
    """One resource to deliver to the EHR, written in the same transaction as the decision."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The business identifier is deterministic, so enqueueing the same resource twice is a no-op.
        UniqueConstraint("organization_id", "identifier", name="uq_outbox_identifier"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_claim", "claim_id"),
        enum_check("status", OutboxStatus, "ck_outbox_status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    claim_id: Mapped[str | None] = mapped_column(ForeignKey("claims.id"), nullable=True)
    patient_id: Mapped[str] = mapped_column(String(200))
    month: Mapped[str] = mapped_column(String(7))
    resource_type: Mapped[str] = mapped_column(String(40))
    # What the resource is for (claim, minutes, activity, superbill, consent, replaces-claim...).
    purpose: Mapped[str] = mapped_column(String(40))
    identifier: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[OutboxStatus] = mapped_column(StrEnumType(OutboxStatus, 14))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A worker leases a row until this instant; another worker may take it over afterwards.
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    fhir_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FactsCacheRow(Base):
    """The EHR facts of a patient-month as last read, so a rollup can run from them unattended."""

    __tablename__ = "facts_cache"

    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    facts: Mapped[dict] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RateLimitRow(Base):
    """Requests counted per key (client address, session) and fixed time window."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class RollupBatchRow(Base):
    """One batch of a month's rollup run: a range of patient ids that one process claims, evaluates and closes.

    Several processes (on one or several machines) share a run: each claims the next pending batch
    (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so no patient-month is evaluated by two at once.
    """

    __tablename__ = "rollup_batches"
    __table_args__ = (
        Index("ix_rollup_batches_open", "organization_id", "month", "status"),
        enum_check("status", RollupBatchStatus, "ck_rollup_batches_status"),
    )

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    month: Mapped[str] = mapped_column(String(7))
    # Patients with ids after `after_patient` (none: from the first) up to `through_patient` (none: to the last).
    after_patient: Mapped[str | None] = mapped_column(String(200), nullable=True)
    through_patient: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[RollupBatchStatus] = mapped_column(StrEnumType(RollupBatchStatus, 10))
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    patients: Mapped[int] = mapped_column(Integer, default=0)
    new_versions: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    billable: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScheduledRunRow(Base):
    """A scheduled job done once per organization and period (`smart-app worker`'s month-end rollup): the row's
    insert is the claim, so several workers on several machines run it once."""

    __tablename__ = "scheduled_runs"

    job: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(20), primary_key=True)
    started_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[str] = mapped_column(Text, default="")
    # The month-end rollup's run: a worker that finds the job unfinished joins this run, never starts another.
    rollup_run: Mapped[str | None] = mapped_column(String(36), nullable=True)


class PractitionerRow(Base):
    """A practitioner as the EHR last described them (name, credentials, NPI), for the claims that name them."""

    __tablename__ = "practitioners"

    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    reference: Mapped[str] = mapped_column(String(500), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    credentials: Mapped[str] = mapped_column(String(200), default="")
    npi: Mapped[str] = mapped_column(String(20), default="")
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
