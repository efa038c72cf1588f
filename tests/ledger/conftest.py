"""Ledger fixtures: a migrated database (SQLite and PostgreSQL) holding one organization, and entry builders."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import transaction
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.values import EntryInput, TimerInput

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
