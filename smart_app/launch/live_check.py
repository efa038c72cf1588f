"""`smart-app org check --live`: a real SMART Backend Services token with the app's key, and one FHIR read with it.

`org check` alone reads what the EHR advertises; an EHR can list `client_credentials` and still refuse the app's
client (the SMART reference launcher did, issue 15). This check asks for a token exactly as the month-end jobs do
(client_credentials, a private_key_jwt assertion signed with the organization's key, the system scopes) and reads
one page of Practitioners with it, and says which step failed and what the EHR answered. The token is used for the
read only: it is not stored, so the jobs' own cached token is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from smart_app.db import in_thread, transaction
from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import SessionExpired, SmartAppError
from smart_app.launch.discovery import discover
from smart_app.launch.flow import LaunchDeps
from smart_app.launch.keys import private_key, signing_key
from smart_app.launch.org_check import Check
from smart_app.launch.organizations import Organization
from smart_app.launch.scopes import backend_scopes
from smart_app.launch.token_client import ClientIdentity, request_token

# The read: a type the system scopes allow searching (system/Practitioner.rs), one resource at most.
READ_TYPE = "Practitioner"


@dataclass(frozen=True)
class LiveReport:
    """Each step tried, in order; the first that failed is the last."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Whether the token was issued and the read worked."""
        return all(check.ok or not check.blocking for check in self.checks)


def _signer(deps: LaunchDeps, org: Organization) -> ClientIdentity:
    with transaction(deps.sessions) as db:
        key = signing_key(db, org.key_id)
    try:
        return ClientIdentity(org.backend_client, private_key(key, deps.tokens), key.kid, key.alg)
    except SessionExpired as exc:
        raise SmartAppError(f"The app's signing key {key.kid} cannot be opened with this SMART_APP_SECRET_KEY.",
                            "Run the check with the secret key the server uses, or run `smart-app keys generate` "
                            "and register the JWKS URL again.") from exc


def _failed(text: str, exc: SmartAppError) -> LiveReport:
    return LiveReport((Check(False, text, f"{exc.message} {exc.hint}".strip()),))


async def live_check(deps: LaunchDeps, org: Organization) -> LiveReport:
    """Request a backend token and read one page with it; every step that ran, as checks."""
    who = f"backend client {org.backend_client!r}"
    if org.client_auth != "private_key_jwt" and not org.backend_client_id:
        return LiveReport((Check(False, f"A real backend token ({who})",
                                 "The organization is a public client, which cannot use SMART Backend Services: "
                                 "register a backend app with the app's JWKS URL and set backend_client_id in the "
                                 "organization file (docs/install.md)."),))
    try:
        config = await discover(deps.http, org.issuer)
    except SmartAppError as exc:
        return _failed("The EHR's token endpoint (from its discovery document)", exc)
    try:
        client = await in_thread(_signer, deps, org)
    except SmartAppError as exc:
        return _failed(f"The app's signing key for {who}", exc)
    scope = backend_scopes()
    try:
        token = await request_token(deps.http, config.token_endpoint,
                                    {"grant_type": "client_credentials", "scope": scope}, client)
    except SmartAppError as exc:
        said = exc.message.rstrip(".")
        return LiveReport((Check(False, f"A real backend token from {config.token_endpoint} ({who}, key {client.kid})",
                                 f"{said}. Check that the EHR registers {org.backend_client!r} for backend services "
                                 "(client_credentials) with the app's JWKS URL and the system scopes in "
                                 "docs/install.md."),))
    checks = [Check(True, f"A real backend token from {config.token_endpoint} ({who}, key {client.kid}), "
                          f"valid {token.expires_in} s")]
    missing = sorted(set(scope.split()) - set(token.scope.split())) if token.scope else []
    checks.append(Check(not missing, "The system scopes the month-end jobs ask for were granted",
                        f"Not granted: {' '.join(missing)}. Grant them to {org.backend_client!r} in the EHR; what "
                        "they cover is refused at month end.", blocking=False))
    read = f"One FHIR read with that token (GET {org.issuer}/{READ_TYPE}?_count=1)"
    try:
        page = await FhirClient(deps.http, org.issuer, token.access_token).first_page(READ_TYPE, {"_count": "1"})
    except SessionExpired:
        checks.append(Check(False, read, "The FHIR server refused the token its own token endpoint had just issued "
                                         "(HTTP 401). Tell the EHR administrator: the backend client's tokens are "
                                         "not accepted by the FHIR API at this issuer."))
        return LiveReport(tuple(checks))
    except SmartAppError as exc:
        checks.append(Check(False, read, f"{exc.message} {exc.hint}".strip()))
        return LiveReport(tuple(checks))
    found = len(page.get("entry") or [])
    checks.append(Check(True, f"{read}: a Bundle with {found} resource(s)"))
    return LiveReport(tuple(checks))
