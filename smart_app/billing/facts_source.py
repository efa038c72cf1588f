"""Facts for a rollup: read fresh from the EHR with Backend Services, or from the last saved read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.billing.models import FactsCacheRow
from smart_app.db import utcnow
from smart_app.dialect_upsert import upsert
from smart_app.ehr.record import PatientRecord
from smart_app.rules.facts import PatientFacts
from smart_app.rules.facts_json import facts_from_json, facts_to_json


def coverage_reference(record: PatientRecord) -> str | None:
    """`Coverage/<id>` of the patient's active coverage, if the EHR has one."""
    for coverage in record.get("coverage"):
        if coverage.get("status", "active") == "active" and coverage.get("id"):
            return f"Coverage/{coverage['id']}"
    return None


def save_facts(db: Session, organization_id: str, patient_id: str, month: str, facts: PatientFacts,
               coverage: str | None, now: datetime | None = None, *, mbi: str | None = None) -> None:
    """Keep the EHR's facts of a patient-month (before the app's own records are added), with the Coverage
    reference and the Medicare Beneficiary Identifier the claim needs."""
    upsert(db, FactsCacheRow, {"organization_id": organization_id, "patient_id": patient_id, "month": month,
                               "facts": {"facts": facts_to_json(facts), "coverage": coverage, "mbi": mbi},
                               "fetched_at": now or utcnow()},
           ("organization_id", "patient_id", "month"))


def cached_facts(db: Session, organization_id: str, patient_id: str,
                 month: str) -> tuple[PatientFacts, str | None, datetime] | None:
    """The saved facts, Coverage reference and read time of a patient-month, if any."""
    row = db.get(FactsCacheRow, (organization_id, patient_id, month))
    if row is None:
        return None
    return facts_from_json(row.facts["facts"]), row.facts.get("coverage"), row.fetched_at


def cached_facts_many(db: Session, organization_id: str, patient_ids: Sequence[str],
                      month: str) -> dict[str, tuple[PatientFacts, str | None, str | None]]:
    """Facts, Coverage reference and MBI of many patients' month in one statement; absent ones left out."""
    rows = db.execute(select(FactsCacheRow.patient_id, FactsCacheRow.facts).where(
        FactsCacheRow.organization_id == organization_id, FactsCacheRow.month == month,
        FactsCacheRow.patient_id.in_(list(patient_ids))))
    return {patient_id: (facts_from_json(data["facts"]), data.get("coverage"), data.get("mbi"))
            for patient_id, data in rows}
