"""The whole system on loopback for end-to-end tests: the sandbox EHR and the app, each on its own port."""

from __future__ import annotations

import contextlib
import dataclasses
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx
from sqlalchemy import select

from smart_app.crypto import TokenBox
from smart_app.demo import sandbox_client, sandbox_org
from smart_app.launch.models import AppSession
from smart_app.launch.organizations import Organization
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from smart_app.sandbox.runtime import Sandbox
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
    # The EHR itself, for tests that change what it holds as a user of the EHR would (none in a Stack made by hand).
    ehr: Sandbox | None = None

    @property
    def fhir_base(self) -> str:
        return f"{self.sandbox_url}/fhir"

    def chart_url(self, patient_id: str) -> str:
        return f"{self.sandbox_url}/ehr/chart/{patient_id}"


@contextlib.contextmanager
def running_stack(database_url: str, data_dir: Path, *, app_host: str = "127.0.0.1",
                  sandbox_host: str = "127.0.0.1", client_jwks_url: bool = False,
                  profile: str = "open", client_scope: str = "", writeback: dict | None = None) -> Iterator[Stack]:
    """Start the sandbox and the app against `database_url`; stop both afterwards.

    `profile` is the sandbox EHR's profile (open, epic-like, oracle-like). With `client_jwks_url`, the
    sandbox knows the app's keys by its JWKS URL (fetched at each token
    request, so rotated keys work at once) instead of a copy of the JWKS taken at start-up. `writeback`: the
    organization file's [writeback] settings, as a practice would set them.
    """
    app_sock, sandbox_sock = reserve_socket(), reserve_socket()
    app_url, sandbox_url = url_of(app_sock, app_host), url_of(sandbox_sock, sandbox_host)
    settings = load_settings(env={}, base_url=app_url, database_url=database_url,
                             data_dir=data_dir, secret_key=TEST_SECRET)
    org = sandbox_org(sandbox_url)
    if writeback is not None:
        org = dataclasses.replace(org, extra={**org.extra, "writeback": writeback})
    with engine_for(database_url) as engine:
        client = sandbox_client(engine, settings, org)
        if client_jwks_url:
            client.jwks, client.jwks_url = None, f"{app_url}/.well-known/jwks.json"
        if client_scope:
            client.scope = client_scope
        sandbox = create_sandbox(SandboxConfig(
            base_url=sandbox_url, fixtures_dir=data_path("fixtures"),
            clients=[client], app_launch_url=settings.launch_url, profile=profile))
        with serve_on(sandbox_sock, sandbox), serve_on(app_sock, create_app(settings, [org], engine)):
            yield Stack(app_url=app_url, sandbox_url=sandbox_url, settings=settings, organization=org,
                        ehr=sandbox.state.sandbox)


IFRAME_SRC = re.compile(r'<iframe[^>]*\ssrc="([^"]+)"', re.IGNORECASE)


def iframe_src(chart_html: str) -> str:
    """The app URL the sandbox chart embeds, with HTML entities decoded."""
    match = IFRAME_SRC.search(chart_html)
    assert match, "the chart page has no iframe"
    return match.group(1).replace("&amp;", "&")


LAUNCH_META = re.compile(r'<meta name="smart-app-launch" content="([^"]+)" data-nonce="([^"]+)">')
CONTINUE_LINK = re.compile(r'<a id="continue-launch" href="([^"]+)"')
FINISH_FORM = re.compile(r'<form id="finish-launch"')
HIDDEN_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def launch_page(page: httpx.Response) -> tuple[str, str, str]:
    """The app's launch page: (the EHR authorize URL it goes on to, the state, the nonce it keeps)."""
    meta = LAUNCH_META.search(page.text)
    assert page.status_code == 200 and meta, page.text
    return html.unescape(CONTINUE_LINK.search(page.text).group(1)), meta.group(1), html.unescape(meta.group(2))


def finish_launch(browser: httpx.Client, app_url: str, callback: str, nonce: str | None) -> httpx.Response:
    """Post the EHR's callback parameters with the nonce, as the app's finishing page does."""
    fields = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    if nonce is not None:
        fields["browser_nonce"] = nonce
    return browser.post(f"{app_url}/callback", data=fields, headers={"Origin": app_url})


def follow_launch(browser: httpx.Client, page: httpx.Response, app_url: str, *,
                  choose: str | None = None) -> httpx.Response:
    """Do what the app's launch and callback pages make a browser do (app.js), as a cookie-less browser would.

    The launch page keeps its nonce in sessionStorage and goes on to the EHR; the callback page, finding no
    cookie, posts the nonce back. `choose` picks the user on the EHR's sign-in page (a standalone sign-in).
    """
    meta = LAUNCH_META.search(page.text)
    if page.status_code != 200 or meta is None:
        return page
    state, nonce = meta.group(1), html.unescape(meta.group(2))
    step = browser.get(html.unescape(CONTINUE_LINK.search(page.text).group(1)))
    if choose is not None and "sandbox_login=" in step.text:
        link = re.search(r'href="([^"]*sandbox_login=' + re.escape(quote(choose, safe="")) + r'[^"]*)"', step.text)
        assert link, f"{choose} is not offered on the EHR's sign-in page"
        step = browser.get(urljoin(str(step.url), html.unescape(link.group(1))))
    if FINISH_FORM.search(step.text) is None:
        return step
    fields = {name: html.unescape(value) for name, value in HIDDEN_FIELD.findall(step.text)}
    assert fields.get("state") == state, "the callback came back for another launch"
    fields["browser_nonce"] = nonce
    return browser.post(f"{app_url}/callback", data=fields, headers={"Origin": app_url})


def open_chart(browser: httpx.Client, stack: Stack, patient_id: str,
               user: str | None = None) -> httpx.Response:
    """Do what a person does: open the patient's chart, let the iframe launch the app."""
    params = {"user": user} if user else {}
    chart = browser.get(stack.chart_url(patient_id), params=params)
    assert chart.status_code == 200, chart.text
    return follow_launch(browser, browser.get(iframe_src(chart.text)), stack.app_url)


def sign_in(browser: httpx.Client, stack: Stack, user: str, next_path: str = "/billing") -> httpx.Response:
    """A biller's own sign-in (no chart): the app's sign-in page, the EHR's sign-in as `user`, then `next_path`.

    `browser` should be a `top_level_browser()`: the sign-in ends on the page asked for, found by its cookie.
    """
    # With several organizations installed the app asks which; this stack's is named at once.
    page = browser.get(f"{stack.app_url}/signin", params={"next": next_path, "org": stack.organization.id})
    return follow_launch(browser, page, stack.app_url, choose=user)


def biller_headers(stack: Stack, user: str = "pr-biller", address: str | None = None) -> dict[str, str]:
    """Sign in as the practice's biller (their own sign-in, no chart); the billing page's bearer headers.

    `address`: the loopback address the sign-in comes from (its own per-address launch allowance)."""
    with top_level_browser(address) as browser:
        page = sign_in(browser, stack, user)
    assert page.status_code == 200 and str(page.url).startswith(f"{stack.app_url}/billing"), page.text
    return bearer(page.text)


def new_browser() -> httpx.Client:
    """An HTTP client that follows redirects and keeps cookies, as a browser does.

    Like a browser that refuses the app's cookies inside the EHR's iframe, it never sends them back (they
    are Secure and the tests run on plain http), so the app's cookie-less paths are the ones exercised.
    """
    return httpx.Client(follow_redirects=True, timeout=20)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def top_level_browser(address: str | None = None) -> httpx.Client:
    """A browser tab of the app's own (a biller's sign-in, no EHR frame): it keeps and sends the app's cookies.

    Browsers treat http://127.0.0.1 as a secure context and send Secure cookies there; httpx's cookie jar does
    not, so this client adds them itself (cookies are per host, not per port, as in a browser).
    """
    transport = httpx.HTTPTransport(local_address=address) if address else None
    client = httpx.Client(follow_redirects=True, timeout=20, transport=transport)

    def send_secure_cookies(request: httpx.Request) -> None:
        if request.url.host not in LOOPBACK:
            return
        secure = [f"{c.name}={c.value}" for c in client.cookies.jar
                  if c.secure and c.domain == request.url.host and c.value]
        if secure:
            sent = request.headers.get("cookie")
            request.headers["cookie"] = "; ".join(([sent] if sent else []) + secure)

    client.event_hooks["request"] = [send_secure_cookies]
    return client


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
