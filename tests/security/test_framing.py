"""Threat: another site frames the app (clickjacking, or a look-alike EHR wrapped around a real launch).

A real Chromium loads a page from a third loopback origin that iframes the app; the app's CSP
`frame-ancestors` names only the registered EHR origins, so the browser must refuse to render it.
The registered sandbox chart, on the other hand, shows the app.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.live_server import serve
from tests.stack import Stack, iframe_src

APP_MARKER = "Care-management programs this month"


@pytest.fixture(scope="module")
def framing_site() -> Iterator[str]:
    """A third origin (localhost, not 127.0.0.1, on its own port) whose page frames `?src=`."""

    async def page(request: Request) -> HTMLResponse:
        src = request.query_params["src"].replace('"', "%22")
        return HTMLResponse(f'<!doctype html><title>Not the EHR</title><h1>Look-alike</h1>'
                            f'<iframe id="victim" src="{src}" width="900" height="600"></iframe>')

    with serve(lambda _base: Starlette(routes=[Route("/", page)]), url_host="localhost") as url:
        yield url


def _open(chromium: object, url: str) -> tuple[object, object, list[str]]:
    context = chromium.new_context()
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(url)
    return context, page, console


def _wait_for(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _child_frame(page: object) -> object:
    return next(f for f in page.frames if f is not page.main_frame)


def test_unregistered_origin_cannot_frame_the_app(secure_stack: Stack, framing_site: str, chromium: object) -> None:
    # A real launch URL, as the sandbox chart would embed it: the attacker frames the whole launch.
    launch_url = iframe_src(httpx.get(secure_stack.chart_url("ccm-two-chronic")).text)
    for target in (f"{secure_stack.app_url}/", launch_url):
        context, page, console = _open(chromium, f"{framing_site}/?{urlencode({'src': target})}")
        try:
            refused = _wait_for(lambda: any("frame-ancestors" in m and "blocked" in m for m in console))  # noqa: B023
            assert refused, f"Chromium reported no frame-ancestors refusal for {target}: {console}"
            frame = _child_frame(page)
            assert not frame.url.startswith(secure_stack.app_url), frame.url
            body = frame.content()
            assert APP_MARKER not in body and "Care minutes" not in body
            assert f"frame-ancestors {secure_stack.sandbox_url}" in " ".join(console)
        finally:
            context.close()


def test_registered_ehr_origin_frames_the_app(secure_stack: Stack, chromium: object) -> None:
    context, page, console = _open(chromium, secure_stack.chart_url("ccm-two-chronic"))
    try:
        page.frame_locator("iframe").get_by_text(APP_MARKER).wait_for(timeout=15000)
        assert not any("frame-ancestors" in m for m in console), console
    finally:
        context.close()
