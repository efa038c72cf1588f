"""Throwaway databases for tests: a SQLite file, or a PostgreSQL database cloned from a migrated template."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import make_engine, session_factory, transaction, upgrade

PG_ADMIN_URL = os.environ.get("SMART_APP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def _admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = _admin()
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable", reported below
        return f"{type(exc).__name__}: {exc}"


def require_postgres() -> None:
    """Skip the PostgreSQL half when it is absent, but fail under CI, where it must be there."""
    reason = postgres_available()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is unreachable under CI=true: {reason}")
    pytest.skip(f"PostgreSQL unreachable: {reason}")


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


class PostgresTemplate:
    """One migrated database per test run; each test gets a fast copy of it."""

    def __init__(self) -> None:
        self.name: str | None = None

    def ensure(self) -> str:
        if self.name is None:
            name = f"smart_app_tpl_{uuid.uuid4().hex[:10]}"
            admin = _admin()
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            engine = make_engine(_pg_url(name))
            upgrade(engine)
            engine.dispose()
            self.name = name
        return self.name

    def drop(self) -> None:
        if self.name:
            _drop(self.name)
            self.name = None


def _drop(name: str) -> None:
    admin = _admin()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def fresh_database(backend: str, tmp_path: Path, template: PostgresTemplate) -> Iterator[str]:
    """Yield the URL of an empty, fully migrated database; drop it afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    require_postgres()
    source = template.ensure()
    name = f"smart_app_t_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    admin.dispose()
    try:
        yield _pg_url(name)
    finally:
        _drop(name)


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    """An engine on the database at `url` (a test's, or a running stack's), disposed afterwards."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def sessions_for(url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the database at `url`, their engine disposed afterwards."""
    with engine_for(url) as engine:
        yield session_factory(engine)


@contextmanager
def one_transaction(url: str) -> Iterator[Session]:
    """One transaction on the database at `url`, committed when the block ends without an error."""
    with sessions_for(url) as sessions, transaction(sessions) as db:
        yield db


@contextmanager
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a database with no tables at all (for migration tests); drop it afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    require_postgres()
    name = f"smart_app_e_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    try:
        yield _pg_url(name)
    finally:
        _drop(name)
