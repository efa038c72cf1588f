"""Ledger fixtures: a migrated database (SQLite and PostgreSQL) holding one organization, and entry builders."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.facts_source import cached_facts, save_facts
from smart_app.db import transaction
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.values import EntryInput, TimerInput
from smart_app.rules.facts import CarePlan, Condition, Consent, Episode, PatientFacts, RatingScale

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
ORG = "org-ny"
TZ = "America/New_York"
NURSE = "Practitioner/nurse-1"
DOCTOR = "Practitioner/md-1"
# A fixed "now" inside November 2026 (New York), so the open month is 2026-11.
NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


@pytest.fixture
def factory(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The shared sessions, with the ledger tests' organization saved."""
    with transaction(sessions) as db:
        save_organizations(db, [Organization(id=ORG, name="NY Clinic", issuer="https://ehr.example.org/fhir",
                                             client_id="app", timezone=TZ)])
    return sessions


def entry(**changes: object) -> EntryInput:
    """A valid manual entry (Nov 20 2026, 09:00 New York, 20 minutes of CCM record review), with overrides."""
    base = EntryInput(organization_id=ORG, patient_id="pat-1", performer=NURSE, role="clinical-staff",
                      program="ccm", activity="record-review", start=datetime(2026, 11, 20, 14, 0, tzinfo=UTC),
                      minutes=20, note="reviewed labs")
    return replace(base, **changes)  # type: ignore[arg-type]


def timer_input(**changes: object) -> TimerInput:
    base = TimerInput(organization_id=ORG, patient_id="pat-1", performer=NURSE, role="care-manager",
                      program="ccm", activity="patient-call")
    return replace(base, **changes)  # type: ignore[arg-type]


def documented(factory: sessionmaker[Session], patient: str, programs: set[str], *, org: str = ORG,
               complexity: str | None = None, month: str = "2026-11") -> None:
    """Facts as the EHR gave them (the rollup's `facts_cache`): two chronic conditions and a depression, an
    initiating visit, a PHQ-9 this month, a CoCM episode begun in September, and consent to `programs` (added to
    any consents already kept for the patient)."""
    with transaction(factory) as db:
        kept = cached_facts(db, org, patient, month)
        before = {c.program for c in kept[0].consents} if kept else set()
        facts = PatientFacts(
            month=month,
            conditions=(Condition("E11.9", ICD, "active", id="dm", high_risk=True),
                        Condition("I10", ICD, "active", id="htn"), Condition("F32.A", ICD, "active", id="dep")),
            consents=tuple(Consent(p, "active", date(2026, 1, 5), id=f"consent-{p}")
                           for p in sorted(before | programs)),
            rating_scales=(RatingScale("PHQ-9", date(2026, 11, 2), 14, id="phq"),),
            care_plans=(CarePlan("active", date(2026, 1, 5), id="plan"),),
            initiating_visit=date(2026, 6, 1), complexity=complexity or (kept[0].complexity if kept else None),
            episodes=(Episode("cocm", date(2026, 9, 1)),), qmb=False)
        save_facts(db, org, patient, month, facts, None)
