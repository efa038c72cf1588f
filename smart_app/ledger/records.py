"""Tables of what the care team keeps on file besides minutes: consents, chronicity
attestations, the audit chain, the patient directory and each patient-month's last evaluation."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smart_app.db import Base, StrEnumType, UTCDateTime, enum_check
from smart_app.statuses import CarePlanStatus, ConsentKind, EnrollmentKind, EvidenceKind, WritebackStatus


class ConsentRow(Base):
    """A consent captured in the app (append-only: a withdrawal is a new row)."""

    __tablename__ = "consents"
    __table_args__ = (
        Index("ix_consents_org_patient", "organization_id", "patient_id"),
        enum_check("kind", ConsentKind, "ck_consents_kind"),
        enum_check("writeback_status", WritebackStatus, "ck_consents_writeback_status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    program: Mapped[str] = mapped_column(String(10))
    kind: Mapped[ConsentKind] = mapped_column(StrEnumType(ConsentKind, 12))
    method: Mapped[str] = mapped_column(String(10))  # verbal | written
    explained_availability: Mapped[bool] = mapped_column(Boolean)
    explained_cost_sharing: Mapped[bool] = mapped_column(Boolean)
    explained_right_to_stop: Mapped[bool] = mapped_column(Boolean)
    explained_one_practitioner: Mapped[bool] = mapped_column(Boolean)
    obtained_on: Mapped[date] = mapped_column(Date)
    obtained_by: Mapped[str] = mapped_column(String(500))
    note: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdraws_id: Mapped[str | None] = mapped_column(ForeignKey("consents.id"), nullable=True)
    # Write-back to the EHR, with the server's id.
    writeback_status: Mapped[WritebackStatus] = mapped_column(StrEnumType(WritebackStatus, 14))
    writeback_detail: Mapped[str] = mapped_column(Text)
    fhir_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AttestationRow(Base):
    """A clinician's statement that a condition the rules could not classify is (or is not) chronic."""

    __tablename__ = "chronic_attestations"
    __table_args__ = (Index("ix_attestations_org_patient", "organization_id", "patient_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    condition_id: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(100))
    chronic: Mapped[bool] = mapped_column(Boolean)
    attested_by: Mapped[str] = mapped_column(String(500))
    attested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text)


class EvidenceRow(Base):
    """A fact the care team recorded in the app for the rules (TCM steps, a CoCM episode start, QMB status, a
    high-risk judgement, a care plan on file); append-only, the latest per kind and subject wins."""

    __tablename__ = "recorded_evidence"
    __table_args__ = (
        Index("ix_recorded_evidence_org_patient", "organization_id", "patient_id"),
        enum_check("kind", EvidenceKind, "ck_recorded_evidence_kind"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[EvidenceKind] = mapped_column(StrEnumType(EvidenceKind, 32))
    # What it is about: the discharge (Encounter id) for TCM steps, the condition for a high-risk judgement.
    subject: Mapped[str] = mapped_column(String(200), default="")
    on_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    flag: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(500))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text, default="")


class ScaleRow(Base):
    """A validated rating scale (PHQ-9, GAD-7 ...) administered by the care team and recorded in the app."""

    __tablename__ = "rating_scales"
    __table_args__ = (Index("ix_rating_scales_org_patient", "organization_id", "patient_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    scale: Mapped[str] = mapped_column(String(40))  # the rule set's name for it, e.g. PHQ-9
    loinc: Mapped[str] = mapped_column(String(20))  # its total-score code
    score: Mapped[int] = mapped_column(Integer)
    taken_on: Mapped[date] = mapped_column(Date)  # the local date it was administered
    month: Mapped[str] = mapped_column(String(7))
    recorded_by: Mapped[str] = mapped_column(String(500))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text)
    # The answers, item LOINC code -> score in the questionnaire's order, when given item by item (migration
    # 0015); None for a total-only score.
    items: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class AuditEventRow(Base):
    """One link of the append-only, hash-chained audit log."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    organization_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(500))
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON, hashed as stored
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditCoverageRow(Base):
    """Which audit event last recorded a ledger row, and the row's digest then (`ledger.coverage`)."""

    __tablename__ = "audit_coverage"
    __table_args__ = (Index("ix_audit_coverage_seq", "seq"),)

    table_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    row_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))


class PatientRow(Base):
    """The patient directory for panels: who a patient id is, refreshed at each launch."""

    __tablename__ = "patients"

    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    birth_date: Mapped[str | None] = mapped_column(String(10), nullable=True)
    mrn: Mapped[str | None] = mapped_column(String(100), nullable=True)
    care_manager: Mapped[str | None] = mapped_column(String(500), nullable=True)
    care_manager_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MonthStatusRow(Base):
    """The last evaluation of a patient-month (eligibility from the EHR's facts), for the panel."""

    __tablename__ = "month_status"
    __table_args__ = (Index("ix_month_status_org_month", "organization_id", "month"),)

    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    # Program keys whose only gaps are minutes (or that already bill): worth the team's time.
    eligible_programs: Mapped[list] = mapped_column(JSON)
    decision: Mapped[dict] = mapped_column(JSON)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The panel's summary of `decision` and the ledger state it saw (`billing.panel.snapshot_json`); a column of
    # its own so the panel reads a few hundred bytes per patient, not the whole Decision (migration 0011).
    panel: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class CarePlanRow(Base):
    """A patient's comprehensive care plan: one per patient, its content kept in `care_plan_versions`."""

    __tablename__ = "care_plans"
    __table_args__ = (UniqueConstraint("organization_id", "patient_id", name="uq_care_plans_org_patient"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    started_by: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CarePlanVersionRow(Base):
    """One version of a care plan (append-only): a draft, or the established plan a billing practitioner signed."""

    __tablename__ = "care_plan_versions"
    __table_args__ = (
        UniqueConstraint("plan_id", "number", name="uq_care_plan_versions_plan_number"),
        Index("ix_care_plan_versions_org_patient", "organization_id", "patient_id"),
        enum_check("status", CarePlanStatus, "ck_care_plan_versions_status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("care_plans.id"))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[CarePlanStatus] = mapped_column(StrEnumType(CarePlanStatus, 12))
    template: Mapped[str] = mapped_column(String(60))
    # The plan's elements as canonical JSON text (`ledger.care_plans.CarePlanContent`), hashed as stored.
    content: Mapped[str] = mapped_column(Text)
    written_by: Mapped[str] = mapped_column(String(500))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set on an established version: the day the practitioner signed it and the next review it schedules.
    established_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    review_due: Mapped[date | None] = mapped_column(Date, nullable=True)


class EnrollmentRow(Base):
    """An enrollment event of a patient and program (offered, declined, not a candidate); append-only, audited."""

    __tablename__ = "enrollment_events"
    __table_args__ = (
        Index("ix_enrollment_events_org_patient", "organization_id", "patient_id"),
        enum_check("kind", EnrollmentKind, "ck_enrollment_events_kind"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[str] = mapped_column(String(200))
    program: Mapped[str] = mapped_column(String(10))
    kind: Mapped[EnrollmentKind] = mapped_column(StrEnumType(EnrollmentKind, 16))
    on_date: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(500))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
