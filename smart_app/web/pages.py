"""The HTML pages: the launch endpoints, a person's own sign-in, and the in-chart patient page."""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from smart_app.db import current_revision, head_revision, known_revisions, transaction
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.record import fetch_identity
from smart_app.errors import SmartAppError
from smart_app.launch.flow import (
    LaunchNotBound,
    LaunchResult,
    LaunchStart,
    begin_launch,
    begin_sign_in,
    complete_launch,
)
from smart_app.launch.keys import public_jwks
from smart_app.launch.models import LaunchKind
from smart_app.launch.organizations import Organization, chart_address, list_organizations
from smart_app.launch.sessions import active_session, settle_identity
from smart_app.ledger.consents import ConsentRecord
from smart_app.statuses import WritebackStatus
from smart_app.web.api import cap_minutes
from smart_app.web.authorization import ROUTES, Principal, principal, principal_for
from smart_app.web.patient_view import build_patient_view
from smart_app.web.session_transport import (
    clear_launch_cookie,
    csrf_token,
    launch_cookie,
    same_origin,
    set_launch_cookie,
    set_session_cookie,
)
from smart_app.web.templating import TEMPLATES, ctx

log = logging.getLogger(__name__)

# The commonest short tasks, logged in one click as ending now.
QUICK_LOG = (("patient-call", 5), ("medication-reconciliation", 15), ("provider-communication", 10))
# Where a person's own sign-in may land: the pages that offer it (never an address from elsewhere).
SIGN_IN_PAGES = tuple(sorted({path for (_, path), rule in ROUTES.items() if rule.sign_in}))
CALLBACK_FIELDS = ("state", "code", "error", "error_description")


def writeback_text(consent: ConsentRecord) -> str:
    """Where a consent stands with the EHR, for the page."""
    return {WritebackStatus.WRITTEN: "written to the EHR",
            WritebackStatus.NOT_ACCEPTED: "kept in the app (this EHR does not accept Consent from apps)",
            WritebackStatus.PENDING: "not yet in the EHR: it will be sent when the EHR answers",
            WritebackStatus.FAILED: f"the EHR refused it: {consent.writeback_detail}"}.get(consent.writeback_status, "")


def index(request: Request) -> Response:
    return TEMPLATES.TemplateResponse(request, "index.html", {})


def healthz(request: Request) -> Response:
    """Liveness: the process answers (nothing else is checked, so a database outage restarts nothing)."""
    return JSONResponse({"status": "ok"})


@functools.cache
def _head_revision() -> str:
    # The migrations shipped with this process do not change while it runs.
    return head_revision()


@functools.cache
def _known_revisions() -> frozenset[str]:
    return known_revisions()


def readyz(request: Request) -> Response:
    """Readiness: the database answers and is at the migration this version of the app needs."""
    try:
        current = current_revision(ctx(request).engine)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database means "not ready"
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        return JSONResponse({"status": "not ready", "reason": "the database does not answer"}, status_code=503)
    head = _head_revision()
    # A revision this version does not know is a newer release's: during a rolling upgrade the database is
    # migrated first, and the old workers keep serving until they are replaced (docs/operations.md).
    if current != head and (current is None or current in _known_revisions()):
        return JSONResponse({"status": "not ready",
                             "reason": f"the database is at migration {current or 'none'}, the app needs {head}"},
                            status_code=503)
    return JSONResponse({"status": "ready", "migration": head})


def jwks(request: Request) -> Response:
    with transaction(ctx(request).sessions) as db:
        document = public_jwks(db)
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})


def _launching(request: Request, start: LaunchStart) -> Response:
    """The page that sends the browser on to the EHR, leaving the launch's nonce in a cookie and sessionStorage."""
    response = TEMPLATES.TemplateResponse(request, "launching.html", {"start": start})
    set_launch_cookie(response, ctx(request).settings, start.browser_nonce)
    return response


async def launch(request: Request) -> Response:
    """`/launch` (an issuer with one organization) and `/launch/<organization id>` (one of several on an EHR)."""
    start = await begin_launch(ctx(request).launch, request.query_params.get("iss"),
                               request.query_params.get("launch"), request.path_params.get("org_id"))
    return _launching(request, start)


def _next_path(raw: str | None) -> str:
    """The page a sign-in returns to: one of the app's own sign-in pages, with its query, else the biller's page."""
    parts = urlsplit(raw or "")
    if parts.scheme or parts.netloc or parts.path not in SIGN_IN_PAGES:
        return "/billing"
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def sign_in(request: Request) -> Response:
    """`/signin?next=/billing[&org=ID]`: a biller's or administrator's own sign-in at their organization's EHR."""
    app = ctx(request)
    next_path = _next_path(request.query_params.get("next"))

    def organizations() -> list[Organization]:
        with transaction(app.sessions) as db:
            return list_organizations(db)

    orgs = await run_in_threadpool(organizations)
    chosen = request.query_params.get("org")
    org = next((o for o in orgs if o.id == chosen), None) if chosen else (orgs[0] if len(orgs) == 1 else None)
    if org is None:
        if chosen:
            raise SignInError(f"No organization {chosen!r} is installed.", "Choose your organization from the list.")
        choices = [(o.name, "/signin?" + urlencode({"org": o.id, "next": next_path})) for o in orgs]
        return TEMPLATES.TemplateResponse(request, "sign_in.html", {"choices": choices},
                                          status_code=200 if choices else 503)
    return _launching(request, await begin_sign_in(app.launch, org, next_path))


class SignInError(SmartAppError):
    """The sign-in page was asked for something that does not exist."""

    title = "Sign-in"
    status_code = 404


async def render_patient_page(request: Request, who: Principal, status_code: int = 200) -> Response:
    """The patient page for a person; the handle goes into the page for cookie-less browsers."""
    app = ctx(request)
    view = await build_patient_view(app, who)
    template = "patient_main.html" if request.query_params.get("fragment") else "patient.html"
    return TEMPLATES.TemplateResponse(request, template, {
        "view": view, "summary": view.summary, "session": who.session, "who": view.who, "handle": who.handle,
        "csrf": csrf_token(app.settings, who.session.id_hash), "quick_log": QUICK_LOG,
        "timer_cap": cap_minutes(view.organization), "writeback_text": writeback_text,
        "activity_label": view.vocabulary.label, "chart_address": chart_address},
        status_code=status_code)


async def _finish(request: Request, result: LaunchResult) -> Response:
    """After a completed launch: the patient page at once (no second request depends on a cookie), or for a
    person's own sign-in, who they are and then the page they asked for."""
    app = ctx(request)
    if result.session.kind == LaunchKind.STANDALONE:
        session = await active_session(app.launch, result.handle)
        identity = await fetch_identity(FhirClient(app.http, session.fhir_base, session.access_token),
                                        session.capabilities, session.fhir_user)
        await run_in_threadpool(settle_identity, app.launch, session, identity.name, identity.codes)
        response: Response = RedirectResponse(result.next_path or "/billing", status_code=303)
    else:
        response = await render_patient_page(request, await principal_for(request, result.handle))
    set_session_cookie(response, app.settings, result.handle)
    clear_launch_cookie(response, app.settings)
    return response


def _finishing(request: Request, params: dict[str, str]) -> Response:
    """The callback reached a browser without the launch cookie: the page's script sends the nonce it keeps."""
    fields = {k: params[k] for k in CALLBACK_FIELDS if params.get(k)}
    return TEMPLATES.TemplateResponse(request, "finishing.html", {"fields": fields})


async def callback(request: Request) -> Response:
    """The EHR's redirect: completes at once when the launch cookie binds it to this browser."""
    app = ctx(request)
    params = {k: v for k, v in request.query_params.items() if k in CALLBACK_FIELDS}
    nonce = launch_cookie(request, app.settings)
    if not nonce:
        return _finishing(request, params)
    try:
        result = await complete_launch(app.launch, params, nonce)
    except LaunchNotBound:
        # A cookie of another launch in this browser (two tabs): the sessionStorage of this one decides.
        return _finishing(request, params)
    return await _finish(request, result)


async def callback_post(request: Request) -> Response:
    """The finishing page's post: the callback's parameters and the nonce this tab kept in sessionStorage."""
    app = ctx(request)
    form = await request.form()
    if not same_origin(request):
        raise LaunchNotBound("This sign-in was not started in this browser, so the app did not complete it.",
                             "Open the app again from the patient's chart in the EHR.")
    params = {k: str(form.get(k)) for k in CALLBACK_FIELDS if form.get(k)}
    nonce = str(form.get("browser_nonce") or "") or None
    return await _finish(request, await complete_launch(app.launch, params, nonce))


async def patient_page(request: Request) -> Response:
    return await render_patient_page(request, principal(request))
