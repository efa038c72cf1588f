"""The sandbox EHR and the app on loopback under uvicorn, as the tests run them, with the benchmark's knobs:
the EHR's injected latency and profile, server-side timing of the app, and a bare Starlette endpoint served by
the same uvicorn server as the reference for the capture benchmark."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.common import ServerTimer
from smart_app.db import make_engine
from smart_app.demo import sandbox_client, sandbox_org
from smart_app.launch.organizations import Organization
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from smart_app.sandbox.runtime import Sandbox
from smart_app.settings import Settings, load_settings
from smart_app.warmup import prepare_process
from smart_app.web import app as web_app
from smart_app.web.app import create_app
from smart_app.web.ratelimit import default_rate_limit_rules
from tests.live_server import reserve_socket, serve_on, url_of
from tests.stack import follow_launch, top_level_browser

SECRET = "bench-secret-key-that-is-long-enough-for-the-app-0123456789"
BARE_PATH = "/_bench/bare"


async def _bare(request: Request) -> Response:
    return JSONResponse({"ok": True})


BARE_APP = Starlette(routes=[Route(BARE_PATH, _bare, methods=["GET", "POST"])])


class WithBare:
    """One ASGI app: `/_bench/*` goes to a bare Starlette app, everything else (and the lifespan) to the app."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        if scope["type"] == "http" and scope["path"].startswith("/_bench/"):
            await BARE_APP(scope, receive, send)
            return
        await self.app(scope, receive, send)  # type: ignore[operator]


@dataclass
class BenchStack:
    app_url: str
    sandbox_url: str
    settings: Settings
    organization: Organization
    timer: ServerTimer
    app: Starlette
    sandbox: Sandbox

    def chart_url(self, patient_id: str) -> str:
        return f"{self.sandbox_url}/ehr/chart/{patient_id}"

    def sandbox_log(self, http: httpx.Client) -> list[dict]:
        return http.get(f"{self.sandbox_url}/_sandbox/requests").json()

    def clear_sandbox_log(self, http: httpx.Client) -> None:
        http.delete(f"{self.sandbox_url}/_sandbox/requests").raise_for_status()


def unthrottled_rules() -> dict[str, tuple[int, int]]:
    """The production rate-limit rules with limits no benchmark reaches: every request is still counted (the
    middleware's database upsert is part of what is measured), none is refused."""
    return {prefix: (10**9, window) for prefix, (_, window) in default_rate_limit_rules().items()}


def create_unthrottled_app(settings: Settings, org: Organization, engine: Engine) -> Starlette:
    """`smart_app.web.app.create_app` with `unthrottled_rules` in place of the production limits (30 launches a
    minute per address would stop a 100-launch benchmark; 300 API calls a minute per session, a load test)."""
    original = web_app.default_rate_limit_rules
    web_app.default_rate_limit_rules = unthrottled_rules
    try:
        return create_app(settings, [org], engine)
    finally:
        web_app.default_rate_limit_rules = original


@contextlib.contextmanager
def running_stack(database_url: str, data_dir: Path, *, latency_ms: int = 0,
                  profile: str = "open") -> Iterator[BenchStack]:
    """Start the sandbox EHR and the app (plus the bare endpoint) against `database_url`; stop both after."""
    app_sock, sandbox_sock = reserve_socket(), reserve_socket()
    app_url, sandbox_url = url_of(app_sock), url_of(sandbox_sock)
    settings = load_settings(env={}, base_url=app_url, database_url=database_url, data_dir=data_dir,
                             secret_key=SECRET)
    org = sandbox_org(sandbox_url)
    engine = make_engine(database_url)
    client = sandbox_client(engine, settings, org)
    sandbox = create_sandbox(SandboxConfig(
        base_url=sandbox_url, fixtures_dir=data_path("fixtures"), clients=[client],
        app_launch_url=settings.launch_url, profile=profile, latency_ms=latency_ms))
    app = create_unthrottled_app(settings, org, engine)
    prepare_process([org.rule_set])  # as `smart-app serve` does before serving
    timer = ServerTimer(WithBare(app))
    try:
        with serve_on(sandbox_sock, sandbox), serve_on(app_sock, timer):
            yield BenchStack(app_url, sandbox_url, settings, org, timer, app, sandbox.state.sandbox)
    finally:
        engine.dispose()


IFRAME_SRC = re.compile(r'<iframe[^>]*\ssrc="([^"]+)"', re.IGNORECASE)
HANDLE_META = re.compile(r'<meta name="smart-app-handle" content="([^"]+)"')


def iframe_src(chart_html: str) -> str:
    match = IFRAME_SRC.search(chart_html)
    if not match:
        raise RuntimeError("the sandbox chart page has no iframe")
    return match.group(1).replace("&amp;", "&")


def page_handle(html: str) -> str:
    match = HANDLE_META.search(html)
    if not match:
        raise RuntimeError("the patient page carries no session handle")
    return match.group(1)


def open_chart(browser: httpx.Client, stack: BenchStack, patient_id: str, user: str | None = None) -> httpx.Response:
    """What a person does: open the chart; the iframe launches the app (its launch page and callback followed)."""
    chart = browser.get(stack.chart_url(patient_id), params={"user": user} if user else {})
    chart.raise_for_status()
    return follow_launch(browser, browser.get(iframe_src(chart.text)), stack.app_url)


def new_browser() -> httpx.Client:
    """A browser that keeps the app's (partitioned) cookies, as Chromium does in the EHR's frame: the callback
    completes at once, without the finishing page a cookie-less browser needs."""
    client = top_level_browser()
    client.timeout = httpx.Timeout(30)
    return client
