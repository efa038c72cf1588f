"""Add what the app itself keeps (consents, chronicity attestations, rating scales) to the facts read from the
EHR."""

from __future__ import annotations

import dataclasses
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from smart_app.ledger.attestations import attestations_for
from smart_app.ledger.care_plans import plan_versions, with_care_plans
from smart_app.ledger.consents import ConsentRecord, consent_history, facts_consents
from smart_app.ledger.evidence import evidence_history, with_evidence
from smart_app.ledger.scales import ScaleRecord, facts_scales, scales_for
from smart_app.ledger.values import Entry
from smart_app.rules.facts import PatientFacts, TimeEntry


def with_app_records(db: Session, organization_id: str, patient_id: str, timezone: str,
                     ehr_facts: PatientFacts, consents: list[ConsentRecord] | None = None,
                     scales: list[ScaleRecord] | None = None) -> PatientFacts:
    """The EHR's facts plus the consents, attestations, rating scales, established care plans and other evidence
    captured in the app (its system of record).

    `consents`, `scales`: the patient's consent history and recorded scales when the caller has already read them.
    """
    if consents is None:
        consents = consent_history(db, organization_id, patient_id)
    if scales is None:
        scales = scales_for(db, organization_id, patient_id)
    attestations = attestations_for(db, organization_id, patient_id, timezone=timezone)
    merged = dataclasses.replace(ehr_facts, consents=ehr_facts.consents + facts_consents(consents),
                                 attestations=ehr_facts.attestations + attestations,
                                 rating_scales=ehr_facts.rating_scales + facts_scales(scales))
    merged = with_care_plans(merged, plan_versions(db, organization_id, patient_id))
    return with_evidence(merged, evidence_history(db, organization_id, patient_id))


def time_entries(entries: tuple[Entry, ...], tz: str) -> list[TimeEntry]:
    """The evaluator's view of counting ledger entries: program, minutes, role, local date."""
    zone = ZoneInfo(tz)
    return [TimeEntry(program=e.program, minutes=e.minutes, performer=e.role,
                      date=e.start.astimezone(zone).date(), id=e.id) for e in entries]
