"""The whole system on loopback for end-to-end tests: the sandbox EHR and the app, each on its own port."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from smart_app.crypto import TokenBox
from smart_app.demo import sandbox_client, sandbox_org
from smart_app.launch.models import AppSession
from smart_app.launch.organizations import Organization
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from smart_app.settings import Settings, load_settings
from smart_app.web.app import create_app
from tests.databases import engine_for, one_transaction
from tests.live_server import reserve_socket, serve_on, url_of

TEST_SECRET = "test-secret-key-that-is-long-enough-for-the-app-0123456789"


@dataclass(frozen=True)
class Stack:
    """URLs and settings of a running sandbox EHR + app pair."""

    app_url: str
    sandbox_url: str
    settings: Settings
    organization: Organization

    @property
    def fhir_base(self) -> str:
        return f"{self.sandbox_url}/fhir"

    def chart_url(self, patient_id: str) -> str:
        return f"{self.sandbox_url}/ehr/chart/{patient_id}"


@contextlib.contextmanager
def running_stack(database_url: str, data_dir: Path, *, app_host: str = "127.0.0.1",
                  sandbox_host: str = "127.0.0.1", client_jwks_url: bool = False,
                  profile: str = "open") -> Iterator[Stack]:
    """Start the sandbox and the app against `database_url`; stop both afterwards.

    `profile` is the sandbox EHR's profile (open, epic-like, oracle-like). With `client_jwks_url`, the
    sandbox knows the app's keys by its JWKS URL (fetched at each token
    request, so rotated keys work at once) instead of a copy of the JWKS taken at start-up.
    """
    app_sock, sandbox_sock = reserve_socket(), reserve_socket()
    app_url, sandbox_url = url_of(app_sock, app_host), url_of(sandbox_sock, sandbox_host)
    settings = load_settings(env={}, base_url=app_url, database_url=database_url,
                             data_dir=data_dir, secret_key=TEST_SECRET)
    org = sandbox_org(settings, sandbox_url)
    with engine_for(database_url) as engine:
        client = sandbox_client(engine, settings, org)
        if client_jwks_url:
            client.jwks, client.jwks_url = None, f"{app_url}/.well-known/jwks.json"
        sandbox = create_sandbox(SandboxConfig(
            base_url=sandbox_url, fixtures_dir=data_path("fixtures"),
            clients=[client], app_launch_url=settings.launch_url, profile=profile))
        with serve_on(sandbox_sock, sandbox), serve_on(app_sock, create_app(settings, [org], engine)):
            yield Stack(app_url=app_url, sandbox_url=sandbox_url, settings=settings, organization=org)


IFRAME_SRC = re.compile(r'<iframe[^>]*\ssrc="([^"]+)"', re.IGNORECASE)


def iframe_src(chart_html: str) -> str:
    """The app URL the sandbox chart embeds, with HTML entities decoded."""
    match = IFRAME_SRC.search(chart_html)
    assert match, "the chart page has no iframe"
    return match.group(1).replace("&amp;", "&")


def open_chart(browser: httpx.Client, stack: Stack, patient_id: str,
               user: str | None = None) -> httpx.Response:
    """Do what a person does: open the patient's chart, let the iframe launch the app."""
    params = {"user": user} if user else {}
    chart = browser.get(stack.chart_url(patient_id), params=params)
    assert chart.status_code == 200, chart.text
    return browser.get(iframe_src(chart.text))


def new_browser() -> httpx.Client:
    """An HTTP client that follows redirects and keeps cookies, as a browser does."""
    return httpx.Client(follow_redirects=True, timeout=20)


def stored_sessions(stack: Stack) -> list[AppSession]:
    """Every launched session in the app's database."""
    with one_transaction(stack.settings.database_url) as db:
        return list(db.scalars(select(AppSession)))


def launch_token(stack: Stack, patient_id: str, user: str | None = None) -> tuple[str, AppSession]:
    """Launch the app for a patient as a person would; return the EHR access token it holds."""
    with new_browser() as browser:
        page = open_chart(browser, stack, patient_id, user=user)
        assert page.status_code == 200, page.text
    session = max(stored_sessions(stack), key=lambda s: s.created_at)
    assert session.patient_id == patient_id
    return TokenBox(TEST_SECRET).open(session.access_token_enc), session


HANDLE_META = re.compile(r'<meta name="smart-app-handle" content="([^"]+)"')


def page_handle(html: str) -> str:
    """The per-launch session handle the page keeps for cookie-less browsers."""
    match = HANDLE_META.search(html)
    assert match, "the page carries no session handle"
    return match.group(1)


def bearer(html: str) -> dict[str, str]:
    """Headers that carry the page's session as its script does."""
    return {"Authorization": f"Bearer {page_handle(html)}"}
