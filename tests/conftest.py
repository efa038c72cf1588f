"""Shared fixtures: throwaway databases on SQLite and PostgreSQL, and the running stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import session_factory
from tests.databases import BACKENDS, PostgresTemplate, engine_for, fresh_database


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PostgresTemplate]:
    template = PostgresTemplate()
    yield template
    template.drop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path, pg_template) -> Iterator[str]:
    """A fresh migrated database on each backend."""
    with fresh_database(request.param, tmp_path, pg_template) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the fresh database of `database_url`, disposed after the test."""
    with engine_for(database_url) as engine:
        yield engine


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the fresh database of `database_url` (override it to seed rows, requesting it by name)."""
    return session_factory(engine)


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory, pg_template) -> Iterator[object]:
    """The sandbox EHR and the app running on loopback, on each database backend."""
    from tests.stack import running_stack

    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url, running_stack(url, tmp) as running:
        yield running


# Module scope: Playwright's sync API keeps an event loop running while it is open, which would
# break asyncio.run in the tests that follow.
@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright."""
    from tests.chromium import launched_chromium

    with launched_chromium() as browser:
        yield browser
