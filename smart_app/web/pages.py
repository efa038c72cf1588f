"""The HTML pages: the launch endpoints and the in-chart patient page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from smart_app.db import transaction
from smart_app.launch.flow import begin_launch, complete_launch
from smart_app.launch.keys import public_jwks
from smart_app.launch.sessions import ActiveSession, active_session
from smart_app.ledger.consents import ConsentRecord
from smart_app.ledger.values import DEFAULT_TIMER_CAP_MINUTES
from smart_app.statuses import WritebackStatus
from smart_app.web.patient_view import build_patient_view
from smart_app.web.session_transport import (
    csrf_token,
    page_handle,
    set_session_cookie,
)
from smart_app.web.templating import TEMPLATES, ctx

# The commonest short tasks, logged in one click as ending now.
QUICK_LOG = (("patient-call", 5), ("medication-reconciliation", 15), ("provider-communication", 10))


def writeback_text(consent: ConsentRecord) -> str:
    """Where a consent stands with the EHR, for the page."""
    return {WritebackStatus.WRITTEN: "written to the EHR",
            WritebackStatus.NOT_ACCEPTED: "kept in the app (this EHR does not accept Consent from apps)",
            WritebackStatus.PENDING: "not yet in the EHR: it will be sent when the EHR answers",
            WritebackStatus.FAILED: f"the EHR refused it: {consent.writeback_detail}"}.get(consent.writeback_status, "")


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


async def render_patient_page(request: Request, session: ActiveSession, handle: str,
                              status_code: int = 200) -> Response:
    """The patient page for a session; `handle` goes into the page for cookie-less browsers."""
    app = ctx(request)
    view = await build_patient_view(app, session)
    request.state.frame_origins = view.organization.frame_origins
    template = "patient_main.html" if request.query_params.get("fragment") else "patient.html"
    return TEMPLATES.TemplateResponse(request, template, {
        "view": view, "summary": view.summary, "session": session, "handle": handle,
        "csrf": csrf_token(app.settings, session.id_hash), "quick_log": QUICK_LOG,
        "timer_cap": int(view.organization.extra.get("timer_cap_minutes", DEFAULT_TIMER_CAP_MINUTES)),
        "writeback_text": writeback_text,
        "activity_label": lambda code: (view.vocabulary.get(code).label if view.vocabulary.get(code) else code)},
        status_code=status_code)


async def callback(request: Request) -> Response:
    """Finish the launch and show the page at once, so no second request depends on a cookie."""
    app = ctx(request)
    handle, _ = await complete_launch(app.launch, dict(request.query_params))
    session = await active_session(app.launch, handle)
    response = await render_patient_page(request, session, handle)
    set_session_cookie(response, app.settings, handle)
    return response


async def patient_page(request: Request) -> Response:
    app = ctx(request)
    handle = await page_handle(request, app.settings)
    if not handle:
        # Cookie refused by the browser: the page's script may still hold the handle.
        return TEMPLATES.TemplateResponse(request, "recover.html", {}, status_code=401)
    session = await active_session(app.launch, handle)
    return await render_patient_page(request, session, handle)
