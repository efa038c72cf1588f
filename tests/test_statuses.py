"""Statuses and kinds are types: the app writes only its enums' values, the database refuses anything else
(migration 0008's CHECK constraints), and migrating a database that holds rows keeps them and their links."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.claims import store_claim
from smart_app.billing.models import ClaimRow, OutboxRow
from smart_app.billing.outbox import OutgoingResource, enqueue
from smart_app.db import transaction, upgrade
from smart_app.errors import ConfigError
from smart_app.launch.models import OrganizationRow
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.consents import ConsentInput, record_consent
from smart_app.ledger.entries import record_entry
from smart_app.ledger.models import TimeEntryRow, TimerRow
from smart_app.ledger.records import ConsentRow
from smart_app.ledger.timers import discard_timer, start_timer
from smart_app.ledger.values import EntryInput, TimerInput
from smart_app.statuses import ClaimStatus, ConsentKind, EntryKind, OutboxStatus, TimerOutcome, WritebackStatus
from tests.billing.claims import ccm_claim
from tests.databases import BACKENDS, PostgresTemplate, empty_database, engine_for

ORG = "org-ny"
TZ = "America/New_York"
NURSE = "Practitioner/nurse-1"
NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
SYSTEM = "urn:smart-app:status-test"


@pytest.fixture
def sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The shared sessions, holding one row of every table with a status or kind column."""
    with transaction(sessions) as db:
        save_organizations(db, [Organization(id=ORG, name="NY Clinic", issuer="https://ehr.example.org/fhir",
                                             client_id="app", timezone=TZ)])
        record_entry(db, EntryInput(organization_id=ORG, patient_id="pat-1", performer=NURSE, role="clinical-staff",
                                    program="ccm", activity="record-review",
                                    start=datetime(2026, 11, 20, 14, 0, tzinfo=UTC), minutes=20),
                     timezone=TZ, now=NOW)
        timer = start_timer(db, TimerInput(organization_id=ORG, patient_id="pat-1", performer=NURSE,
                                           role="care-manager", program="ccm", activity="patient-call"),
                            timezone=TZ, now=NOW)
        discard_timer(db, ORG, timer.id, by=NURSE, now=NOW)
        record_consent(db, ConsentInput(organization_id=ORG, patient_id="pat-1", program="ccm", method="verbal",
                                        explained_availability=True, explained_cost_sharing=True,
                                        explained_right_to_stop=True, explained_one_practitioner=True,
                                        obtained_on=date(2026, 11, 3), obtained_by=NURSE), now=NOW)
        store_claim(db, ccm_claim(organization_id=ORG, month="2026-11"), NOW)
        payload = {"resourceType": "Observation", "status": "final", "identifier": [{"system": SYSTEM, "value": "1"}]}
        enqueue(db, organization_id=ORG, claim_id=None, patient_id="pat-1", month="2026-11",
                resources=[OutgoingResource("Observation", "minutes", SYSTEM, "1", payload)], now=NOW)
    return sessions


def test_statuses_come_back_as_their_enums(sessions: sessionmaker[Session]) -> None:
    with sessions() as db:
        assert db.scalars(select(ClaimRow.status)).one() is ClaimStatus.PROPOSED
        assert db.scalars(select(OutboxRow.status)).one() is OutboxStatus.PENDING
        assert db.execute(select(ConsentRow.kind, ConsentRow.writeback_status)).one() == (
            ConsentKind.CONSENT, WritebackStatus.PENDING)
        assert db.scalars(select(TimeEntryRow.kind)).one() is EntryKind.ENTRY
        assert db.scalars(select(TimerRow.outcome)).one() is TimerOutcome.DISCARDED


def test_a_misspelt_status_is_refused_before_it_is_written(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="'aproved' is not a ClaimStatus; use one of proposed, held"):
        with transaction(sessions) as db:
            db.scalars(select(ClaimRow)).one().status = "aproved"
    with sessions() as db:
        assert db.scalars(select(ClaimRow.status)).one() is ClaimStatus.PROPOSED, "nothing was written"


@pytest.mark.parametrize(("table", "column"), [
    ("claims", "status"), ("outbox", "status"), ("consents", "kind"), ("consents", "writeback_status"),
    ("time_entries", "kind"), ("timers", "outcome"),
])
def test_the_database_refuses_a_value_outside_the_enum(sessions: sessionmaker[Session], table: str,
                                                        column: str) -> None:
    # Raw SQL, as another writer (a script, a hand-made fix) would send it, past the app's own types.
    with pytest.raises(IntegrityError, match=f"ck_{table}_{column}"):
        with transaction(sessions) as db:
            db.execute(text(f"UPDATE {table} SET {column} = 'bogus'"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrating_a_database_with_rows_keeps_them_and_their_links(backend: str, tmp_path: Path,
                                                                   pg_template: PostgresTemplate) -> None:
    with empty_database(backend, tmp_path) as url, engine_for(url) as engine:
        upgrade(engine, "0005")
        with engine.begin() as connection:
            # Core inserts of rows as release 0005 wrote them: a claim with an outbox row pointing at it, a
            # timer with the entry it produced, and a void correcting that entry.
            connection.execute(insert(OrganizationRow).values(
                id=ORG, name="NY", issuer="https://ehr.example.org/fhir", client_id="app", client_auth="public",
                config={}, updated_at=NOW))
            connection.execute(insert(ClaimRow).values(
                id="c1", organization_id=ORG, patient_id="pat-1", month="2026-11", version=1, status="approved",
                content={}, content_hash="0" * 64, created_at=NOW, review_note=""))
            connection.execute(insert(OutboxRow).values(
                id="o1", organization_id=ORG, claim_id="c1", patient_id="pat-1", month="2026-11",
                resource_type="Claim", purpose="claim", identifier=f"{SYSTEM}|c1", payload={}, status="done",
                attempts=1, next_attempt_at=NOW, last_error="", created_at=NOW, updated_at=NOW))
            connection.execute(insert(TimerRow).values(
                id="t1", organization_id=ORG, patient_id="pat-1", performer=NURSE, role="care-manager",
                program="ccm", activity="patient-call", note="", started_at=NOW, stopped_at=NOW, outcome="recorded",
                closed_by=NURSE, minutes=20))
            entry = dict(organization_id=ORG, patient_id="pat-1", performer=NURSE, role="care-manager", program="ccm",
                         activity="patient-call", starts_at=NOW, ends_at=NOW, minutes=20, month="2026-11", note="",
                         source="timer", shared=False, recorded_by=NURSE, recorded_at=NOW, late=False)
            connection.execute(insert(TimeEntryRow).values(id="e1", kind="entry", reason="", timer_id="t1", **entry))
            connection.execute(insert(TimeEntryRow).values(id="e2", kind="void", reason="typo", corrects_id="e1",
                                                           **entry))
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(select(OutboxRow.claim_id, ClaimRow.status).join(
                ClaimRow, ClaimRow.id == OutboxRow.claim_id)).all() == [("c1", ClaimStatus.APPROVED)]
            assert connection.execute(select(TimeEntryRow.id, TimeEntryRow.kind, TimeEntryRow.corrects_id,
                                             TimeEntryRow.timer_id).order_by(TimeEntryRow.id)).all() == [
                ("e1", EntryKind.ENTRY, None, "t1"), ("e2", EntryKind.VOID, "e1", None)]
        # References are enforced again after the migration (SQLite had them off while it copied tables).
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("UPDATE outbox SET claim_id = 'no-such-claim'"))
        with pytest.raises(IntegrityError, match="ck_claims_status"), engine.begin() as connection:
            connection.execute(text("UPDATE claims SET status = 'bogus'"))


def test_a_migration_that_would_leave_broken_references_is_not_committed(tmp_path: Path) -> None:
    # A row pointing at nothing, written with SQLite's reference checks off (as a hand-made fix could):
    # the references are checked before the migration commits, so the database stays as it was.
    with empty_database("sqlite", tmp_path) as url, engine_for(url) as engine:
        upgrade(engine, "0005")
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.execute(insert(OrganizationRow).values(
                id=ORG, name="NY", issuer="https://ehr.example.org/fhir", client_id="app", client_auth="public",
                config={}, updated_at=NOW))
            connection.execute(insert(OutboxRow).values(
                id="o1", organization_id=ORG, claim_id="no-such-claim", patient_id="pat-1", month="2026-11",
                resource_type="Claim", purpose="claim", identifier=f"{SYSTEM}|c1", payload={}, status="done",
                attempts=1, next_attempt_at=NOW, last_error="", created_at=NOW, updated_at=NOW))
            connection.commit()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        with pytest.raises(ConfigError, match="1 row\\(s\\) of outbox point at rows that do not exist"):
            upgrade(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0005"
            tables = connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
            assert not [name for name, _ in tables if name.startswith("_alembic_tmp")]
            checks = {name for name, sql in tables if "CONSTRAINT ck_" in sql}
            assert checks == {"time_entries"}, "only 0002's minutes check: none of 0008's was added"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
