"""The Starlette application: routes, error pages, static files."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from smart_app.db import transaction
from smart_app.errors import SmartAppError
from smart_app.launch.flow import begin_launch, complete_launch
from smart_app.launch.keys import public_jwks
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.launch.sessions import active_session
from smart_app.paths import data_path
from smart_app.settings import Settings
from smart_app.web.context import AppContext, build_context
from smart_app.web.patient_view import build_patient_view

log = logging.getLogger(__name__)
SESSION_COOKIE = "smart_app_session"


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(str(data_path("templates"))),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    return Jinja2Templates(env=env)


TEMPLATES = _templates()


def ctx(request: Request) -> AppContext:
    """The process's services."""
    return request.app.state.ctx


def session_handle(request: Request) -> str | None:
    """The opaque session handle the browser sent, if any."""
    return request.cookies.get(SESSION_COOKIE)


async def index(request: Request) -> Response:
    return TEMPLATES.TemplateResponse(request, "index.html", {})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def jwks(request: Request) -> Response:
    with transaction(ctx(request).sessions) as db:
        document = public_jwks(db)
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})


async def launch(request: Request) -> Response:
    url = await begin_launch(ctx(request).launch, request.query_params.get("iss"),
                             request.query_params.get("launch"))
    return RedirectResponse(url, status_code=302)


async def callback(request: Request) -> Response:
    handle, _ = await complete_launch(ctx(request).launch, dict(request.query_params))
    response = RedirectResponse("/patient", status_code=303)
    secure = ctx(request).settings.base_url.startswith("https://")
    response.set_cookie(SESSION_COOKIE, handle, httponly=True, secure=secure, samesite="lax",
                        path="/", max_age=ctx(request).settings.session_minutes * 60)
    return response


async def patient_page(request: Request) -> Response:
    app_ctx = ctx(request)
    session = await active_session(app_ctx.launch, session_handle(request))
    view = await build_patient_view(app_ctx, session)
    return TEMPLATES.TemplateResponse(request, "patient.html", {
        "view": view, "summary": view.summary, "session": session})


async def app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SmartAppError)
    log.info("user-facing error on %s: %s", request.url.path, exc.message)
    return TEMPLATES.TemplateResponse(request, "error.html", {
        "title": exc.title, "message": exc.message, "hint": exc.hint},
        status_code=exc.status_code)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = "Page not found" if exc.status_code == 404 else "Request refused"
    return TEMPLATES.TemplateResponse(request, "error.html", {
        "title": title, "message": str(exc.detail), "hint": "Open the app from the patient's chart."},
        status_code=exc.status_code)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
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

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/.well-known/jwks.json", jwks),
        Route("/launch", launch),
        Route("/callback", callback),
        Route("/patient", patient_page),
        Mount("/static", StaticFiles(directory=str(data_path("templates") / "static")),
              name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        SmartAppError: app_error, HTTPException: http_error, Exception: unexpected_error})
