"""Fixtures of the security tests: one running stack per database backend, shared by every module here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, QUIET_FLAGS
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


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright (module scope: its event loop must not outlive the module)."""
    import os

    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM}; `make test` installs Debian's chromium package"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET_FLAGS)
        yield browser
        browser.close()
