"""Threat: another site frames the app (clickjacking, or a look-alike EHR around a real session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.live_server import serve
from tests.stack import Stack

APP_MARKER = "Care-management programs this month"


@pytest.fixture(scope="module")
def framing_site() -> Iterator[str]:
    """A third loopback origin that frames whatever `?src=` names, as an attacker's page would."""

    async def page(request: Request) -> HTMLResponse:
        src = request.query_params["src"].replace('"', "%22")
        return HTMLResponse(f'<!doctype html><title>not the EHR</title><iframe id="victim" src="{src}" '
                            'width="900" height="600"></iframe>')

    with serve(lambda _base: Starlette(routes=[Route("/", page)]), url_host="localhost") as url:
        yield url


def _frame_text(page: object) -> str:
    frame = page.frame_locator("#victim")
    ...
