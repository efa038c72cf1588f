"""Refuse a request whose address holds a NUL character (`%00`), before any route reads it.

PostgreSQL cannot store or compare text with NUL and SQLite can: a path or query parameter carrying one
(an entry id, `?care_manager=`, `?iss=`) would fail on one backend and pass on the other. No address the app
makes or accepts has a reason to carry it, so every route answers the same 400.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from smart_app.web.templating import TEMPLATES

TITLE = "Bad request"
MESSAGE = "The address of this request contains a NUL character (%00), which the app does not accept."
HINT = "Remove it from the address and send the request again."


def has_nul(scope: Scope) -> bool:
    """Whether the decoded path or the query string (raw or percent-encoded) holds a NUL."""
    query: bytes = scope.get("query_string") or b""
    return "\x00" in scope.get("path", "") or b"\x00" in query or b"%00" in query


class InputGuard:
    """ASGI middleware: 400 for an address with NUL in its path or query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_nul(scope):
            await self.app(scope, receive, send)
            return
        await self._refuse(Request(scope))(scope, receive, send)

    @staticmethod
    def _refuse(request: Request) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": {"title": TITLE, "message": MESSAGE, "hint": HINT}}, status_code=400)
        page = TEMPLATES.get_template("error.html").render(title=TITLE, message=MESSAGE, hint=HINT)
        return Response(page, status_code=400, media_type="text/html; charset=utf-8")
