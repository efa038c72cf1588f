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
