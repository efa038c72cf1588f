"""Security headers on every response: CSP with frame-ancestors limited to registered EHRs."""

from __future__ import annotations

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

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


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds CSP and the usual hardening headers (body size is BodyLimit's job)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        origins = getattr(request.state, "frame_origins", None)
        if origins is None:
            origins = registered_frame_origins(request)
        response.headers["Content-Security-Policy"] = content_security_policy(tuple(origins))
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            # Pages and API answers carry patient data: never cache them.
            response.headers.setdefault("Cache-Control", "no-store")
        if request.url.scheme == "https":
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response
