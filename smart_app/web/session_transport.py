"""How the browser carries its session inside an EHR iframe, where cookies may be refused.

The session handle travels in a `__Host-` cookie (Secure, HttpOnly, SameSite=None, Partitioned)
where the browser keeps it, and otherwise as a bearer header that the page's script sends from
sessionStorage. A state-changing request must prove it comes from our page: either the bearer
header (which a cross-site form cannot set) or the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from smart_app.errors import SmartAppError
from smart_app.settings import Settings

SECURE_COOKIE = "__Host-smart_app_session"
# Plain-http deployments other than loopback cannot hold Secure cookies; the demo there uses this.
PLAIN_COOKIE = "smart_app_session"
# The nonce binding a launch in progress to the browser that started it (flow.py), for ten minutes.
LAUNCH_COOKIE = "smart_app_launch"
LAUNCH_COOKIE_SECONDS = 600
HANDLE_FIELD = "session_handle"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class CsrfRefused(SmartAppError):
    """A state-changing request without proof that it came from the app's own page."""

    title = "Request refused"
    status_code = 403


def secure_context(settings: Settings) -> bool:
    """Whether browsers treat the app's origin as secure (https, or loopback over http)."""
    parts = urlsplit(settings.base_url)
    return parts.scheme == "https" or parts.hostname in ("localhost", "127.0.0.1", "::1")


def cookie_name(settings: Settings) -> str:
    """The session cookie's name for this deployment."""
    return SECURE_COOKIE if secure_context(settings) else PLAIN_COOKIE


def _set_cookie(response: Response, settings: Settings, name: str, value: str, seconds: int) -> None:
    if secure_context(settings):
        # Written by hand: the standard library's cookie module learns `Partitioned` only in 3.14.
        response.headers.append(
            "set-cookie", f"__Host-{name}={value}; Max-Age={seconds}; Path=/; Secure; HttpOnly; SameSite=None; "
                          "Partitioned")
    else:
        response.set_cookie(name, value, max_age=seconds, path="/", httponly=True, samesite="lax")


def set_session_cookie(response: Response, settings: Settings, handle: str) -> None:
    """Set the session cookie with the attributes a third-party iframe needs."""
    _set_cookie(response, settings, PLAIN_COOKIE, handle, settings.session_minutes * 60)


def set_launch_cookie(response: Response, settings: Settings, nonce: str) -> None:
    """Keep a launch's browser nonce where the browser allows a cookie (sessionStorage holds it as well)."""
    _set_cookie(response, settings, LAUNCH_COOKIE, nonce, LAUNCH_COOKIE_SECONDS)


def clear_launch_cookie(response: Response, settings: Settings) -> None:
    """Forget the launch nonce once the launch is complete."""
    _set_cookie(response, settings, LAUNCH_COOKIE, "", 0)


def launch_cookie(request: Request, settings: Settings) -> str | None:
    """The launch nonce this browser kept in a cookie, if it kept one."""
    name = f"__Host-{LAUNCH_COOKIE}" if secure_context(settings) else LAUNCH_COOKIE
    return request.cookies.get(name) or None


def same_origin(request: Request) -> bool:
    """Whether a posted form came from one of the app's own pages, as the browser's Origin header says."""
    origin = request.headers.get("origin")
    if origin is None:
        # Browsers send Origin on every POST; Sec-Fetch-Site where they send that instead.
        return request.headers.get("sec-fetch-site") == "same-origin"
    parts = urlsplit(str(request.base_url))
    return origin.rstrip("/") == f"{parts.scheme}://{parts.netloc}"


def bearer_handle(request: Request) -> str | None:
    """The handle from `Authorization: Bearer`, if sent."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def request_handle(request: Request, settings: Settings, form_handle: str | None = None) -> str | None:
    """The session handle: bearer header first, then the cookie, then a posted form field."""
    return bearer_handle(request) or request.cookies.get(cookie_name(settings)) or form_handle


def csrf_token(settings: Settings, id_hash: str) -> str:
    """The session's CSRF token: an HMAC of its id under the app's secret."""
    return hmac.new(settings.secret_key.encode(), f"csrf:{id_hash}".encode(), hashlib.sha256).hexdigest()


def check_csrf(request: Request, settings: Settings, id_hash: str, form_token: str | None = None) -> None:
    """Refuse a state-changing request that carries neither the bearer handle nor the CSRF token."""
    if request.method in SAFE_METHODS or bearer_handle(request):
        return
    sent = request.headers.get(CSRF_HEADER) or form_token or ""
    if not hmac.compare_digest(sent, csrf_token(settings, id_hash)):
        raise CsrfRefused("This change did not come from the app's own page, so it was refused.",
                          "Reload the app from the patient's chart and try again.")


async def page_handle(request: Request, settings: Settings) -> str | None:
    """The handle for a page request: header or cookie, or the form field a cookie-less page of ours posts.

    A handle posted by another site's form is ignored: it could plant someone else's session in this browser.
    """
    form_handle = None
    if request.method == "POST":
        form = await request.form()
        if same_origin(request):
            form_handle = str(form.get(HANDLE_FIELD) or "") or None
    return request_handle(request, settings, form_handle)
