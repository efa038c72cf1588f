"""Tables of the ledger room: time entries (append-only), timers, and month locks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from smart_app.db import Base, StrEnumType, UTCDateTime, enum_check
from smart_app.statuses import EntryKind, TimerOutcome


class TimeEntryRow(Base):
    """One row of the append-only ledger; rows are inserted, never updated or deleted."""

    __tablename__ = "time_entries"
    __table_args__ = (
        Index("ix_time_entries_org_patient_month", "organization_id", "patient_id", "month"),
        # The panel and the rollup read a whole organization-month at once.
        Index("ix_time_entries_org_month", "organization_id", "month"),
        Index("ix_time_entries_org_performer_start", "organization_id", "performer", "starts_at"),
        CheckConstraint("minutes > 0", name="ck_time_entries_minutes_positive"),
        # An entry is corrected at most once, so concurrent corrections cannot fork its history.
        UniqueConstraint("corrects_id", name="uq_time_entries_corrects_id"),
        enum_check("kind", EntryKind, "ck_time_entries_kind"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    performer: Mapped[str] = mapped_column(String(500))
    role: Mapped[str] = mapped_column(String(40))
    program: Mapped[str] = mapped_column(String(10))
    activity: Mapped[str] = mapped_column(String(80))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Stored beside starts_at so the overlap check is one indexed range query.
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    minutes: Mapped[int] = mapped_column(Integer)
    # "YYYY-MM" on the organization's wall clock, fixed at write time.
    month: Mapped[str] = mapped_column(String(7))
    note: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(10))
    shared: Mapped[bool] = mapped_column(Boolean)
    kind: Mapped[EntryKind] = mapped_column(StrEnumType(EntryKind, 10))
    corrects_id: Mapped[str | None] = mapped_column(ForeignKey("time_entries.id"), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(500))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(Boolean)
    split_group: Mapped[str | None] = mapped_column(String(36), nullable=True)
    timer_id: Mapped[str | None] = mapped_column(ForeignKey("timers.id"), nullable=True)


class TimerRow(Base):
    """A timer kept on the server; at most one running per person and organization."""

    __tablename__ = "timers"
    __table_args__ = (
        Index("uq_timers_one_running", "organization_id", "performer", unique=True,
              sqlite_where=text("stopped_at IS NULL"), postgresql_where=text("stopped_at IS NULL")),
        enum_check("outcome", TimerOutcome, "ck_timers_outcome"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    performer: Mapped[str] = mapped_column(String(500))
    role: Mapped[str] = mapped_column(String(40))
    program: Mapped[str] = mapped_column(String(10))
    activity: Mapped[str] = mapped_column(String(80))
    note: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[TimerOutcome | None] = mapped_column(StrEnumType(TimerOutcome, 12), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(500), nullable=True)
    minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)


class MonthLockRow(Base):
    """A patient-month whose claim was approved (and queued for the EHR); entries that arrive later are flagged late."""

    __tablename__ = "claim_locks"

    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    locked_by: Mapped[str] = mapped_column(String(500))
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime())
