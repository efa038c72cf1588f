"""Security headers on every response: CSP with frame-ancestors limited to registered EHRs."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smart_app.db import transaction
from smart_app.launch.organizations import list_organizations


def registered_frame_origins(request: Request) -> tuple[str, ...]:
    """Every EHR origin any installed organization allows to frame the app."""
    with transaction(request.app.state.ctx.sessions) as db:
        return tuple(sorted({o for org in list_organizations(db) for o in org.frame_origins}))


def content_security_policy(frame_origins: tuple[str, ...]) -> str:
    """The CSP: same-origin scripts and styles only, no inline script, framing by the EHR only."""
    ancestors = " ".join(frame_origins) if frame_origins else "'none'"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
            f"frame-ancestors {ancestors}")


class SecurityHeaders:
    """ASGI middleware adding CSP and the usual hardening headers (body size is BodyLimit's job).

    A plain ASGI wrapper of `send` rather than BaseHTTPMiddleware: the headers are added to the response's
    start message, after the endpoint has run (so it may set `request.state.frame_origins` to its
    organization's origins), without the extra task and body streaming BaseHTTPMiddleware costs per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                origins: tuple[str, ...] | None = getattr(request.state, "frame_origins", None)
                if origins is None:
                    origins = await run_in_threadpool(registered_frame_origins, request)
                headers["Content-Security-Policy"] = content_security_policy(tuple(origins))
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if not request.url.path.startswith("/static/") and "cache-control" not in headers:
                    # Pages and API answers carry patient data: never cache them.
                    headers["Cache-Control"] = "no-store"
                if request.url.scheme == "https":
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, with_headers)
