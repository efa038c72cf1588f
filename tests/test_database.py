"""Migrations run on SQLite and PostgreSQL, and the server refuses an unmigrated database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from smart_app.db import current_revision, head_revision, make_engine, require_current, upgrade
from smart_app.errors import ConfigError


def test_migrations_create_every_table(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"organizations", "pending_launches", "app_sessions"} <= tables
    require_current(engine)
    upgrade(engine)  # running it again changes nothing
    assert current_revision(engine) == head_revision()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_unmigrated_database_is_refused_with_the_fix(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(ConfigError, match="smart-app db upgrade"):
        require_current(engine)
    engine.dispose()


def test_unsupported_database_url_is_explained() -> None:
    with pytest.raises(ConfigError, match="Unsupported database URL"):
        make_engine("mysql://localhost/x")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0010_lets_organizations_share_an_issuer_and_keeps_their_rows(backend: str, tmp_path: Path,
                                                                                 pg_template) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert, select
    from sqlalchemy.exc import IntegrityError

    from smart_app.launch.models import BackendTokenRow, OrganizationRow
    from tests.databases import empty_database, engine_for

    now = datetime(2026, 11, 1, tzinfo=UTC)
    org = dict(name="A", issuer="https://ehr.example.org/fhir", client_id="a", client_auth="public", config={},
               updated_at=now)
    with empty_database(backend, tmp_path) as url, engine_for(url) as engine:
        upgrade(engine, "0008")
        with engine.begin() as connection:
            connection.execute(insert(OrganizationRow).values(id="a", **org))
            connection.execute(insert(BackendTokenRow).values(organization_id="a", access_token_enc="x", scope="s",
                                                              expires_at=now))
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(OrganizationRow).values(id="b", **{**org, "client_id": "b"}))
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(insert(OrganizationRow).values(id="b", **{**org, "client_id": "b"}))
        with engine.connect() as connection:
            assert connection.execute(select(OrganizationRow.id).where(
                OrganizationRow.issuer == org["issuer"]).order_by(OrganizationRow.id)).scalars().all() == ["a", "b"]
            assert connection.execute(select(BackendTokenRow.organization_id)).scalars().all() == ["a"]
            assert "ix_organizations_issuer" in {ix["name"] for ix in inspect(connection).get_indexes("organizations")}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0011_keeps_locks_only_for_patients_whose_claim_was_approved(backend: str, tmp_path: Path,
                                                                              pg_template) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert, select, text

    from smart_app.launch.models import OrganizationRow
    from smart_app.ledger.models import MonthLockRow
    from tests.databases import empty_database, engine_for

    now = datetime(2026, 12, 6, tzinfo=UTC)
    with empty_database(backend, tmp_path) as url, engine_for(url) as engine:
        upgrade(engine, "0010")
        with engine.begin() as connection:
            connection.execute(insert(OrganizationRow).values(
                id="a", name="A", issuer="https://ehr.example.org/fhir", client_id="a", client_auth="public",
                config={}, updated_at=now))
            connection.execute(text("INSERT INTO month_locks (organization_id, month, locked_by, locked_at) "
                                    "VALUES ('a', '2026-12', 'Practitioner/biller', :now)"), {"now": now})
            for claim_id, patient, version, status in (
                    ("c1", "approved-pt", 1, "replaced"), ("c2", "approved-pt", 2, "approved"),
                    ("c3", "proposed-pt", 1, "proposed"), ("c4", "corrected-pt", 1, "replaced"),
                    ("c5", "corrected-pt", 2, "proposed")):
                connection.execute(text(
                    "INSERT INTO claims (id, organization_id, patient_id, month, version, status, content, "
                    "content_hash, created_at, review_note) VALUES (:id, 'a', :patient, '2026-12', :version, :status, "
                    "'{}', 'h', :now, '')"),
                    {"id": claim_id, "patient": patient, "version": version, "status": status, "now": now})
        upgrade(engine)
        with engine.connect() as connection:
            locked = connection.execute(select(MonthLockRow.patient_id, MonthLockRow.month, MonthLockRow.locked_by)
                                        .order_by(MonthLockRow.patient_id)).all()
    assert [tuple(r) for r in locked] == [("approved-pt", "2026-12", "Practitioner/biller"),
                                         ("corrected-pt", "2026-12", "Practitioner/biller")]
