"""Who is calling the JSON API: the launch session, its organization, user and patient."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from smart_app.errors import SmartAppError
from smart_app.launch.organizations import Organization
from smart_app.launch.sessions import ActiveSession, active_session
from smart_app.web.orgs import load_organization
from smart_app.web.session_transport import check_csrf, request_handle
from smart_app.web.templating import ctx


class NotAllowed(SmartAppError):
    """The session may not do this (another patient, another person's timer...)."""

    title = "Not allowed"
    status_code = 403


@dataclass(frozen=True)
class Caller:
    """An authorized API caller: bound to one organization, one user and one patient."""

    session: ActiveSession
    organization: Organization
    performer: str
    role: str

    @property
    def patient_id(self) -> str:
        return self.session.patient_id

    def require_patient(self, patient_id: str) -> None:
        """Refuse anything about a patient other than the session's own."""
        if patient_id != self.session.patient_id:
            raise NotAllowed("This session was launched for another patient.",
                             "Open that patient's chart in the EHR and launch the app from there.")


async def api_caller(request: Request) -> Caller:
    """Authorize an API request by its launch session; state changes also need CSRF proof."""
    app = ctx(request)
    session = await active_session(app.launch, request_handle(request, app.settings))
    check_csrf(request, app.settings, session.id_hash)
    org = load_organization(app, session)
    # The answer may be framed by this organization's EHR only (and the security headers need no lookup).
    request.state.frame_origins = org.frame_origins
    performer = (session.fhir_user or "").rstrip("/").split("/")
    if len(performer) < 2 or performer[-2] not in ("Practitioner", "PractitionerRole"):
        raise NotAllowed("The EHR did not say who you are, so time cannot be attributed to you.",
                         "Ask the EHR administrator to grant the openid and fhirUser scopes, then relaunch.")
    if session.performer_role is None:
        raise NotAllowed("The app has not yet read your role on this patient's care team.",
                         "Reload the app's page in the chart, then try again.")
    return Caller(session=session, organization=org, performer="/".join(performer[-2:]),
                  role=session.performer_role)
