"""Who may do what: ONE table of every route (and every CLI command) with the app roles it needs.

`protect` wraps each route's endpoint with its rule from `ROUTES`; the app refuses to start when a route
has no entry, and `tests/security/test_authorization.py` checks the table against the app and the CLI.
The wrapper finds the session (bearer header, cookie, or the handle a same-origin page posts), works out
the person's roles in the session's organization (`smart_app.access`), and refuses with a 403 that says
which role is needed and who grants it. Pages a biller opens without a session start their own sign-in.

Database work runs in the thread pool, never on the event loop; a plain `def` endpoint runs there whole.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import cast
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from smart_app.access.grants import active_assignments, holders
from smart_app.access.roles import NO_ROLES, AppRole, RoleCode, Roles, TimeRole, resolve_roles
from smart_app.crypto import hash_handle
from smart_app.db import transaction
from smart_app.ehr.identity import user_reference
from smart_app.errors import ConfigError, SessionExpired, SmartAppError
from smart_app.launch.models import AppSession
from smart_app.launch.organizations import Organization, get_organization
from smart_app.launch.sessions import ActiveSession, current_session, role_codes_of, seen_users, session_row
from smart_app.web.session_transport import check_csrf, page_handle, request_handle
from smart_app.web.templating import TEMPLATES, ctx

CLINICAL = frozenset({AppRole.CLINICIAN, AppRole.CARE_MANAGER})
PANEL = frozenset({AppRole.CARE_MANAGER, AppRole.BILLER})
BILLING = frozenset({AppRole.BILLER})
ADMIN = frozenset({AppRole.ADMINISTRATOR})


@dataclass(frozen=True)
class Rule:
    """What a route needs: a session or not, a patient's chart or not, and which app roles (any of them)."""

    what: str
    session: bool = True
    roles: frozenset[AppRole] | None = None  # None: any signed-in person, even one with no role yet
    patient: bool = False  # only from a chart launch, for the session's own patient
    sign_in: bool = False  # a page that, opened without a session, starts the person's own sign-in

    def describe(self) -> str:
        """The rule in words, for docs/security.md and refusals."""
        if not self.session:
            return "anyone"
        who = " or ".join(r.label for r in sorted(self.roles or ())) if self.roles else "any signed-in EHR user"
        return who + (", launched from the patient's chart" if self.patient else "")


PUBLIC = Rule("public", session=False)

# The table. Keys are (method, path template); HEAD follows GET.
ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("GET", "/launch"): PUBLIC,
    ("GET", "/launch/{org_id}"): PUBLIC,
    ("GET", "/callback"): PUBLIC,
    ("POST", "/callback"): PUBLIC,
    ("GET", "/signin"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/patient"): Rule("the patient's page", patient=True),
    ("POST", "/patient"): Rule("the patient's page", patient=True),
    ("GET", "/api/v1/month"): Rule("the patient's month", patient=True),
    ("POST", "/api/v1/timers"): Rule("starting a timer", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/timers/{timer_id}/stop"): Rule("stopping a timer", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/timers/{timer_id}/discard"): Rule("discarding a timer", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/entries"): Rule("recording time", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/entries/{entry_id}/amend"): Rule("correcting time", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/entries/{entry_id}/void"): Rule("voiding time", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/consents"): Rule("recording a consent", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/consents/{consent_id}/withdraw"): Rule("recording a withdrawal", roles=CLINICAL,
                                                              patient=True),
    # Whoever may record consent may record that the program was offered, declined or is not for the patient.
    ("POST", "/api/v1/enrollment"): Rule("recording an offer or a decline", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/attestations"): Rule("attesting a condition", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/evidence"): Rule("recording evidence for the rules", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/scales"): Rule("recording a rating scale", roles=CLINICAL, patient=True),
    ("GET", "/patient/care-plan"): Rule("the care plan", roles=CLINICAL, patient=True),
    ("POST", "/patient/care-plan"): Rule("the care plan", roles=CLINICAL, patient=True),
    ("GET", "/patient/care-plan.pdf"): Rule("the care plan's patient copy", roles=CLINICAL, patient=True),
    ("POST", "/patient/care-plan.pdf"): Rule("the care plan's patient copy", roles=CLINICAL, patient=True),
    ("POST", "/api/v1/care-plans"): Rule("drafting the care plan", roles=CLINICAL, patient=True),
    # Any clinician reaches it; `ledger.care_plans.establish` then requires the billing-practitioner time role.
    ("POST", "/api/v1/care-plans/{version_id}/sign"): Rule("signing the care plan", roles=CLINICAL, patient=True),
    ("GET", "/panel"): Rule("the care-team panel", roles=PANEL, sign_in=True),
    ("POST", "/panel"): Rule("the care-team panel", roles=PANEL, sign_in=True),
    ("GET", "/panel.csv"): Rule("the panel's CSV", roles=PANEL, sign_in=True),
    ("POST", "/panel.csv"): Rule("the panel's CSV", roles=PANEL, sign_in=True),
    ("GET", "/billing"): Rule("the billing review", roles=BILLING, sign_in=True),
    ("POST", "/billing"): Rule("the billing review", roles=BILLING, sign_in=True),
    ("GET", "/billing/superbill.{fmt}"): Rule("the superbill", roles=BILLING, sign_in=True),
    ("POST", "/billing/superbill.{fmt}"): Rule("the superbill", roles=BILLING, sign_in=True),
    ("POST", "/api/v1/claims/approve"): Rule("approving several claims", roles=BILLING),
    ("POST", "/api/v1/claims/{claim_id}/approve"): Rule("approving a claim", roles=BILLING),
    ("POST", "/api/v1/claims/{claim_id}/hold"): Rule("holding a claim", roles=BILLING),
    ("POST", "/api/v1/billing/rollup"): Rule("rolling up the month", roles=BILLING),
    ("POST", "/api/v1/billing/deliver"): Rule("sending to the EHR", roles=BILLING),
    ("POST", "/api/v1/outbox/{row_id}/retry"): Rule("retrying a delivery", roles=BILLING),
    ("GET", "/admin/users"): Rule("the users and roles page", roles=ADMIN, sign_in=True),
    ("POST", "/admin/users"): Rule("the users and roles page", roles=ADMIN, sign_in=True),
    ("POST", "/api/v1/admin/roles"): Rule("granting a role", roles=ADMIN),
    ("POST", "/api/v1/admin/roles/revoke"): Rule("revoking a role", roles=ADMIN),
}

# The command line runs with the server's own credentials (database URL, secret key): whoever can run it is
# an operator of the installation. Commands with a web equivalent name it, so both stay in step.
OPERATOR = "operator (shell access to the server)"
CLI_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (OPERATOR, ""),
    "serve": (OPERATOR, ""),
    "sandbox": (OPERATOR, ""),
    "db upgrade": (OPERATOR, ""),
    "org add": (OPERATOR, ""),
    "org list": (OPERATOR, ""),
    "org check": (OPERATOR, ""),
    "keys generate": (OPERATOR, ""),
    "keys rotate": (OPERATOR, ""),
    "keys list": (OPERATOR, ""),
    "rules check": (OPERATOR, ""),
    "rules evaluate": (OPERATOR, ""),
    "rules import-rvu": (OPERATOR, ""),
    "rollup": (OPERATOR, "POST /api/v1/billing/rollup"),
    "outbox run": (OPERATOR, "POST /api/v1/billing/deliver"),
    "outbox status": (OPERATOR, "GET /billing"),
    "superbill": (OPERATOR, "GET /billing/superbill.{fmt}"),
    "export": (OPERATOR, ""),
    "audit verify": (OPERATOR, ""),
    "audit tail": (OPERATOR, ""),
    "audit baseline": (OPERATOR, ""),
    "purge": (OPERATOR, ""),
    "worker": (OPERATOR, ""),
    "users grant": (OPERATOR, "POST /api/v1/admin/roles"),
    "users revoke": (OPERATOR, "POST /api/v1/admin/roles/revoke"),
    "users list": (OPERATOR, "GET /admin/users"),
}


class NotAllowed(SmartAppError):
    """The person may not do this: a role is missing, or it concerns another patient or person."""

    title = "Not allowed"
    status_code = 403


class SignInRequired(Exception):
    """A page opened without a session that a person may reach by their own sign-in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class HandleMissing(Exception):
    """A chart page opened without a session handle: the page's script may still hold one (cookie-less iframe)."""


@dataclass(frozen=True)
class Principal:
    """The person behind a request: their session, organization and roles there."""

    session: ActiveSession
    organization: Organization
    handle: str
    roles: Roles
    # Who grants roles here, for refusals: the organization's administrators.
    administrators: tuple[str, ...] = ()

    @property
    def user(self) -> str | None:
        """The EHR user (Practitioner/123, Person/456) or `sub:...` when the EHR named no FHIR user."""
        return user_reference(self.session.fhir_user)

    @property
    def name(self) -> str:
        """The person's name as the EHR gives it, else their reference."""
        return self.session.user_name or self.user or "an EHR user"

    @property
    def patient_id(self) -> str:
        """The launched patient (routes marked `patient` guarantee one)."""
        if self.session.patient_id is None:
            raise NotAllowed("This needs the app opened from a patient's chart.",
                             "Open the patient's chart in the EHR and launch the app from there.")
        return self.session.patient_id

    def require_patient(self, patient_id: str) -> None:
        """Refuse anything about a patient other than the session's own."""
        if patient_id != self.session.patient_id:
            raise NotAllowed("This session was launched for another patient.",
                             "Open that patient's chart in the EHR and launch the app from there.")

    def who_grants(self) -> str:
        """Whom to ask for a role, named where the app knows them."""
        names = ", ".join(self.administrators)
        return (f"Ask an administrator of {self.organization.name}" + (f" ({names})" if names else "")
                + " to grant it on the app's Users page (/admin/users), or an operator with "
                  "`smart-app users grant`.")

    @property
    def performer(self) -> str:
        """The person recording time, as a Practitioner reference; NotAllowed when they are not one."""
        user = self.user or ""
        if not user.startswith(("Practitioner/", "PractitionerRole/")):
            raise NotAllowed("The EHR did not say which practitioner you are, so time cannot be attributed to you.",
                             "Ask the EHR administrator to grant the openid and fhirUser scopes, then relaunch.")
        return user

    @property
    def time_role(self) -> TimeRole:
        """How this person's minutes count; NotAllowed, saying who can fix it, when the app does not know."""
        if self.roles.time_role is None:
            raise NotAllowed(f"The app does not know your role on the care team ({self.name}), so minutes you "
                             "record could not be counted toward any code.",
                             "Your time role (clinical staff, care manager, billing practitioner or psychiatric "
                             f"consultant) is not set. {self.who_grants()}")
        return self.roles.time_role


def roles_of(db: Session, org: Organization, session: ActiveSession) -> Roles:
    """The session's person's roles in its organization, as of now (grants take effect at once)."""
    return _roles(db, org, session.fhir_user, session.role_codes)


def _roles(db: Session, org: Organization, fhir_user: str | None, codes: tuple[RoleCode, ...] | None) -> Roles:
    user = user_reference(fhir_user)
    granted = active_assignments(db, org.id, user)
    return resolve_roles(user, codes or (), org.role_map, org.role_assignments + granted, org.billing_practitioner)


def administrator_names(db: Session, org: Organization) -> tuple[str, ...]:
    """The organization's administrators by name where the app has seen them sign in (for refusals only:
    it reads the recent sessions)."""
    admins = holders(db, org.id, AppRole.ADMINISTRATOR, org.role_assignments)
    names = {u.user: u.name for u in seen_users(db, org.id) if u.name and u.user in admins}
    return tuple(sorted(names.get(a, a) for a in admins))


def _named(factory: sessionmaker[Session], principal: Principal) -> Principal:
    with transaction(factory) as db:
        return replace(principal, administrators=administrator_names(db, principal.organization))


def _load(factory: sessionmaker[Session], id_hash: str) -> tuple[AppSession, Organization | None, Roles]:
    """The session, its organization and the person's roles, in one transaction (every request does this)."""
    with transaction(factory) as db:
        row = session_row(db, id_hash)
        org = get_organization(db, row.organization_id)
        roles = _roles(db, org, row.fhir_user, role_codes_of(row)) if org is not None else NO_ROLES
        return row, org, roles


async def principal_for(request: Request, handle: str | None) -> Principal:
    """The person behind a session handle, with their roles; SessionExpired when there is no live session."""
    app = ctx(request)
    if not handle:
        raise SessionExpired("This page needs a session started from the EHR.",
                             "Relaunch the app from the patient's chart in the EHR.")
    row, org, roles = await run_in_threadpool(_load, app.sessions, hash_handle(handle))
    if org is None:
        raise SessionExpired("This session's organization is no longer installed.",
                             "Ask the EHR administrator, then relaunch the app from the chart.")
    session = await current_session(app.launch, row)
    # The answer may be framed by this organization's EHR only (and the security headers need no lookup).
    request.state.frame_origins = org.frame_origins
    # Administrators are named only on a refusal (`administrator_names`): most requests never need them.
    return Principal(session=session, organization=org, handle=handle, roles=roles)


async def authorize(request: Request, rule: Rule) -> Principal:
    """The request's principal, checked against `rule`; NotAllowed, SessionExpired or SignInRequired otherwise."""
    app = ctx(request)
    api = request.url.path.startswith("/api/")
    handle = request_handle(request, app.settings) if api else await page_handle(request, app.settings)
    if not handle and rule.sign_in:
        raise SignInRequired(request.url.path)
    if not handle and not api:
        raise HandleMissing()
    principal = await principal_for(request, handle)
    session, roles = principal.session, principal.roles
    if api:
        check_csrf(request, app.settings, session.id_hash)
    if rule.patient and session.patient_id is None:
        raise NotAllowed(f"{rule.what.capitalize()} is opened from a patient's chart.",
                         "Open the patient's chart in the EHR and launch the app from there.")
    if rule.roles is not None and not roles.has_any(rule.roles):
        principal = await run_in_threadpool(_named, app.sessions, principal)
        needed = " or ".join(r.label for r in sorted(rule.roles))
        raise NotAllowed(f"{rule.what.capitalize()} needs the {needed} role; you are signed in as {principal.name} "
                         f"({roles.label}).", principal.who_grants())
    return principal


def principal(request: Request) -> Principal:
    """The principal `protect` found for this request."""
    found = getattr(request.state, "principal", None)
    if not isinstance(found, Principal):
        raise ConfigError(f"{request.url.path} has no principal: its route is not protected.",
                          "Build routes through smart_app.web.authorization.protect.")
    return found


Endpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]


def _guarded(endpoint: Endpoint, rules: dict[str, Rule]) -> Callable[[Request], Awaitable[Response]]:
    is_async = inspect.iscoroutinefunction(endpoint)

    async def guarded(request: Request) -> Response:
        rule = rules["GET" if request.method == "HEAD" else request.method]
        if rule.session:
            try:
                request.state.principal = await authorize(request, rule)
            except SignInRequired as needed:
                query = f"?{request.url.query}" if request.url.query else ""
                return RedirectResponse(f"/signin?next={quote(needed.next_path + query, safe='')}", 303)
            except HandleMissing:
                # Cookie refused by the browser: the page's script posts the handle it keeps, if it keeps one.
                return TEMPLATES.TemplateResponse(request, "recover.html", {"action": request.url.path},
                                                  status_code=401)
        if is_async:
            return await cast(Callable[[Request], Awaitable[Response]], endpoint)(request)
        return await run_in_threadpool(cast(Callable[[Request], Response], endpoint), request)

    guarded.__name__ = getattr(endpoint, "__name__", "endpoint")
    return guarded


def protect(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Each route with its rule from `ROUTES` enforced; ConfigError names any route missing from the table."""
    protected: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Mount):
            if ("GET", route.path) not in ROUTES:
                raise ConfigError(f"{route.path} has no entry in the authorization table.",
                                  "Add it to ROUTES in smart_app/web/authorization.py.")
            protected.append(route)
            continue
        assert isinstance(route, Route)
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        missing = [m for m in methods if (m, route.path) not in ROUTES]
        if missing:
            raise ConfigError(f"{', '.join(missing)} {route.path} has no entry in the authorization table.",
                              "Add it to ROUTES in smart_app/web/authorization.py.")
        rules = {m: ROUTES[(m, route.path)] for m in methods}
        protected.append(Route(route.path, _guarded(route.endpoint, rules), methods=methods, name=route.name))
    return protected
