"""The patient directory and month status: what the panel knows without asking the EHR."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from smart_app.db import utcnow
from smart_app.dialect_upsert import upsert
from smart_app.ledger.records import MonthStatusRow, PatientRow


def remember_patient(db: Session, organization_id: str, patient_id: str, *, name: str,
                     birth_date: str | None, mrn: str | None, care_manager: str | None,
                     care_manager_name: str | None, now: datetime | None = None) -> None:
    """Keep the patient's display details current for the panel."""
    upsert(db, PatientRow, {
        "organization_id": organization_id, "patient_id": patient_id, "name": name,
        "birth_date": birth_date, "mrn": mrn, "care_manager": care_manager,
        "care_manager_name": care_manager_name, "updated_at": now or utcnow()},
        ("organization_id", "patient_id"))


def save_month_status(db: Session, organization_id: str, patient_id: str, month: str, *,
                      eligible_programs: list[str], decision: dict, panel: dict | None = None,
                      now: datetime | None = None) -> None:
    """Store the latest evaluation of a patient-month (and the panel's summary of it)."""
    upsert(db, MonthStatusRow, {
        "organization_id": organization_id, "patient_id": patient_id, "month": month,
        "eligible_programs": eligible_programs, "decision": decision, "panel": panel,
        "evaluated_at": now or utcnow()},
        ("organization_id", "patient_id", "month"))


def patient_name(db: Session, organization_id: str, patient_id: str) -> str | None:
    """The name the directory last saw for a patient, or None when the app has never opened their chart."""
    row = db.get(PatientRow, (organization_id, patient_id))
    return row.name if row else None
