"""The Starlette application: routes, middleware, error pages, static files."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from smart_app.db import transaction
from smart_app.errors import SmartAppError
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.paths import data_path
from smart_app.services import build_context
from smart_app.settings import Settings
from smart_app.web import (
    admin_routes,
    api,
    billing_routes,
    care_plan_routes,
    consent_api,
    enrollment_api,
    pages,
    panel_routes,
    scale_api,
)
from smart_app.web.authorization import protect
from smart_app.web.body_limit import BodyLimit
from smart_app.web.input_guard import InputGuard
from smart_app.web.ratelimit import RateLimit, default_rate_limit_rules
from smart_app.web.security import SecurityHeaders
from smart_app.web.templating import TEMPLATES

log = logging.getLogger(__name__)


def wants_json(request: Request) -> bool:
    """API callers get errors as JSON, people get a page."""
    return request.url.path.startswith("/api/")


async def app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SmartAppError)
    log.info("user-facing error on %s: %s (%d)", request.url.path, type(exc).__name__, exc.status_code)
    if wants_json(request):
        error: dict[str, object] = {"title": exc.title, "message": exc.message, "hint": exc.hint}
        if exc.choices:
            error["choices"] = list(exc.choices)
        return JSONResponse({"error": error}, status_code=exc.status_code)
    return TEMPLATES.TemplateResponse(request, "error.html", {
        "title": exc.title, "message": exc.message, "hint": exc.hint},
        status_code=exc.status_code)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = "Page not found" if exc.status_code == 404 else "Request refused"
    if wants_json(request):
        return JSONResponse({"error": {"title": title, "message": str(exc.detail)}}, status_code=exc.status_code)
    return TEMPLATES.TemplateResponse(request, "error.html", {
        "title": title, "message": str(exc.detail), "hint": "Open the app from the patient's chart."},
        status_code=exc.status_code)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up before its request was read (a closed tab, a dropped network): nothing went wrong here."""
    assert isinstance(exc, ClientDisconnect)
    log.info("client disconnected during %s %s", request.method, request.url.path)
    # Nobody receives this; 499 ("client closed request", as nginx logs it) keeps the access log honest.
    return Response(status_code=499)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    if wants_json(request):
        return JSONResponse({"error": {"title": "Unexpected error", "message": "The app hit an unexpected error.",
                                       "hint": "Try again; if it persists, tell your administrator."}},
                            status_code=500)
    return HTMLResponse(TEMPLATES.get_template("error.html").render(
        title="Something went wrong in the app",
        message="The app hit an unexpected error; nothing you entered was lost.",
        hint="Reload the page. If it happens again, tell your administrator the time it happened."),
        status_code=500)


def create_app(settings: Settings, organizations: list[Organization] | None = None,
               engine: Engine | None = None) -> Starlette:
    """Build the web app; `organizations` are saved to the database at start-up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app_ctx = build_context(settings, engine)
        if organizations:
            with transaction(app_ctx.sessions) as db:
                save_organizations(db, organizations)
        app.state.ctx = app_ctx
        try:
            yield
        finally:
            await app_ctx.http.aclose()
            if engine is None:
                app_ctx.engine.dispose()

    routes = protect([
        Route("/", pages.index),
        Route("/healthz", pages.healthz),
        Route("/readyz", pages.readyz),
        Route("/.well-known/jwks.json", pages.jwks),
        Route("/launch", pages.launch),
        Route("/launch/{org_id}", pages.launch),
        Route("/callback", pages.callback),
        Route("/callback", pages.callback_post, methods=["POST"]),
        Route("/signin", pages.sign_in),
        Route("/patient", pages.patient_page, methods=["GET", "POST"]),
        *api.routes(),
        *consent_api.routes(),
        *enrollment_api.routes(),
        *scale_api.routes(),
        *care_plan_routes.routes(),
        *panel_routes.routes(),
        *billing_routes.routes(),
        *admin_routes.routes(),
        Mount("/static", StaticFiles(directory=str(data_path("templates") / "static")), name="static"),
    ])
    limits = ({**default_rate_limit_rules(), **{prefix: (limit, window) for prefix, limit, window
                                                 in settings.rate_limit_overrides}}
              if settings.rate_limits else {})
    middleware = [Middleware(SecurityHeaders), Middleware(BodyLimit), Middleware(InputGuard),
                  Middleware(RateLimit, rules=limits)]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                     exception_handlers={SmartAppError: app_error, HTTPException: http_error,
                                         ClientDisconnect: client_gone, Exception: unexpected_error})
