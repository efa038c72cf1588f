"""Fixtures of the security tests: one running stack per database backend, shared by every module here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import BACKENDS, PostgresTemplate, fresh_database
from tests.stack import Stack, running_stack


@pytest.fixture(scope="package", params=BACKENDS)
def secure_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 pg_template: PostgresTemplate) -> Iterator[Stack]:
    """The sandbox EHR and the app on loopback, the app's client registered by its JWKS URL."""
    tmp = tmp_path_factory.mktemp(f"security-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url, \
            running_stack(url, tmp, client_jwks_url=True) as running:
        yield running
