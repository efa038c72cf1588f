"""The SMART authorization server: authorize (auto-approved), token, jwks and launch contexts.

`/_sandbox/launch` and `/_sandbox/revoke` are unauthenticated on purpose: this is a local test
EHR, and tests use them to start launches and to simulate revocation.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from smart_app.sandbox.authstate import (
    ACCESS_TTL,
    ONLINE_REFRESH_TTL,
    CodeGrant,
    Context,
    TokenGrant,
)
from smart_app.sandbox.client_auth import OAuthError, authenticate
from smart_app.sandbox.config import SandboxClient
from smart_app.sandbox.pages import message_page, render
from smart_app.sandbox.runtime import Sandbox, sandbox_of
from smart_app.sandbox.scopes import grant, split_scopes
from smart_app.sandbox.users import default_user, display_name, list_users, user_exists, user_reference

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def add_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` appended to whatever query it already has."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def user_cookie(request: Request, sandbox: Sandbox) -> str | None:
    """The chart user from the `sandbox_user` cookie if it names a known user, else default."""
    chosen = request.cookies.get("sandbox_user")
    if user_exists(sandbox.store, chosen):
        return chosen
    return default_user(sandbox.store)


async def authorize(request: Request) -> Response:
    """Validate an authorization request and redirect back with a code (or an OAuth error)."""
    sandbox = sandbox_of(request)
    config = sandbox.config
    params = dict(request.query_params)
    if request.method == "POST":
        params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
    client = config.client(params.get("client_id"))
    if client is None:
        return message_page("Unknown client", "The client_id is not registered with this EHR.",
                            400)
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        return message_page("Invalid redirect_uri",
                            "The redirect_uri is not registered for this client.", 400)
    request.state.client_id = client.client_id
    state = params.get("state")

    def fail(error: str, description: str) -> Response:
        query = {"error": error, "error_description": description}
        if state:
            query["state"] = state
        return RedirectResponse(add_query(redirect_uri, query), status_code=302)

    if not state:
        return fail("invalid_request", "state is required")
    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response_type must be code")
    if not params.get("code_challenge"):
        return fail("invalid_request", "PKCE code_challenge is required")
    if params.get("code_challenge_method") != "S256":
        return fail("invalid_request", "code_challenge_method must be S256")
    if params.get("aud", "").rstrip("/") != config.fhir_base:
        return fail("invalid_request", f"aud must be the FHIR base URL {config.fhir_base}")
    requested = split_scopes(params.get("scope"))
    launch = params.get("launch")
    deny = False
    if launch:
        if "launch" not in requested:
            return fail("invalid_scope", "an EHR launch must request the launch scope")
        resolved = sandbox.auth.resolve_launch(launch)
        if resolved is None:
            return fail("invalid_request", "the launch is unknown or has expired")
        context, deny = resolved
    else:
        if "launch/patient" not in requested and not user_exists(sandbox.store, params.get("sandbox_login")):
            # A provider's own sign-in (a biller, no chart open): the EHR asks who is signing in.
            return _sign_in(request, sandbox, client, params)
        context = Context(user=params.get("sandbox_login") or user_cookie(request, sandbox))
        if "launch/patient" in requested:
            chosen = params.get("sandbox_patient")
            if not chosen or not sandbox.store.exists("Patient", chosen):
                return _patient_picker(request, sandbox, client, params)
            context.patient = chosen
    if deny:
        return fail("access_denied", "the user denied the authorization request")
    granted = grant(" ".join(requested), client.scope, ("patient", "user"))
    if not granted:
        return fail("invalid_scope", "none of the requested scopes can be granted")
    code = sandbox.auth.create_code(CodeGrant(
        client.client_id, redirect_uri, params["code_challenge"], " ".join(granted), context,
        params.get("nonce"),
    ))
    return RedirectResponse(add_query(redirect_uri, {"code": code, "state": state}),
                            status_code=302)


def _patient_picker(request: Request, sandbox: Sandbox, client: SandboxClient,
                    params: dict[str, str]) -> Response:
    patients = []
    for p in sandbox.store.candidates("Patient"):
        href = f"{request.url.path}?" + urlencode({**params, "sandbox_patient": p["id"]})
        patients.append({"name": display_name(p), "birth_date": p.get("birthDate", ""),
                         "href": href})
    return render("picker.html", title="Select a patient", client_id=client.client_id,
                  patients=patients)


def _sign_in(request: Request, sandbox: Sandbox, client: SandboxClient, params: dict[str, str]) -> Response:
    users = [{"label": u.label, "href": f"{request.url.path}?" + urlencode({**params, "sandbox_login": u.id})}
             for u in list_users(sandbox.store)]
    return render("sign_in.html", title="Sign in", client_id=client.client_id, users=users)


def _oauth_error(error: OAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_client"'
    return JSONResponse({"error": error.error, "error_description": error.description},
                        status_code=error.status, headers=headers)


async def token(request: Request) -> Response:
    """The token endpoint: authorization_code, refresh_token and client_credentials grants."""
    sandbox = sandbox_of(request)
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    try:
        client = await authenticate(sandbox.config, sandbox.auth, form)
        request.state.client_id = client.client_id
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            body = _code_grant(sandbox, client, form)
        elif grant_type == "refresh_token":
            body = _refresh_grant(sandbox, client, form)
        elif grant_type == "client_credentials":
            body = _client_credentials(sandbox, client, form)
        else:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(body, headers=_NO_STORE)


def _code_grant(sandbox: Sandbox, client: SandboxClient, form: dict[str, str]) -> dict:
    code = form.get("code", "")
    found, reused = sandbox.auth.redeem_code(code)
    if found is None:
        raise OAuthError("invalid_grant", "the authorization code was already used"
                         if reused else "the authorization code is unknown or expired")
    if found.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the code was issued to another client")
    if form.get("redirect_uri") != found.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    verifier = form.get("code_verifier", "")
    if not verifier:
        raise OAuthError("invalid_grant", "code_verifier is required (PKCE)")
    if not _VERIFIER.match(verifier) or s256(verifier) != found.code_challenge:
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    return _issue(sandbox, client, found.scope, found.context, found.nonce, code)


def _refresh_grant(sandbox: Sandbox, client: SandboxClient, form: dict[str, str]) -> dict:
    old: TokenGrant | None = sandbox.auth.lookup(form.get("refresh_token", ""), "refresh")
    if old is None or old.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the refresh token is unknown, expired or revoked")
    scope = old.scope
    if form.get("scope"):
        wanted = split_scopes(form["scope"])
        if not set(wanted) <= set(split_scopes(old.scope)):
            raise OAuthError("invalid_scope", "a refresh cannot widen the granted scopes")
        scope = " ".join(wanted)
    sandbox.auth.revoke(old.token)  # rotation: each refresh token works once
    return _issue(sandbox, client, scope, old.context, None, None)


def _client_credentials(sandbox: Sandbox, client: SandboxClient, form: dict[str, str]) -> dict:
    if client.auth_method != "private_key_jwt":
        raise OAuthError("unauthorized_client",
                         "client_credentials is only for private_key_jwt backend clients")
    granted = grant(form.get("scope", ""), client.scope, ("system",))
    if not granted:
        raise OAuthError("invalid_scope", "request at least one system/ scope this client may have")
    scope = " ".join(granted)
    access = sandbox.auth.issue("access", client.client_id, scope, Context(), ACCESS_TTL)
    return {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TTL,
            "scope": scope}


def _issue(sandbox: Sandbox, client: SandboxClient, scope: str, context: Context,
           nonce: str | None, code: str | None) -> dict:
    config = sandbox.config
    scopes = split_scopes(scope)
    auth = sandbox.auth
    body: dict = {
        "access_token": auth.issue("access", client.client_id, scope, context, ACCESS_TTL, code),
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL,
        "scope": scope,
        "need_patient_banner": False,  # the sandbox chart shows its own banner
        "smart_style_url": f"{config.base_url}/ehr/smart-style.json",
    }
    if "offline_access" in scopes or "online_access" in scopes:
        ttl = None if "offline_access" in scopes else ONLINE_REFRESH_TTL
        body["refresh_token"] = auth.issue("refresh", client.client_id, scope, context, ttl, code)
    if "openid" in scopes and context.user:
        now = int(time.time())
        claims = {
            "iss": config.fhir_base, "aud": client.client_id, "sub": context.user,
            "fhirUser": f"{config.fhir_base}/{user_reference(context.user)}",
            "iat": now, "exp": now + ACCESS_TTL, "auth_time": now,
        }
        if nonce:
            claims["nonce"] = nonce
        body["id_token"] = sandbox.key.sign(claims)
    if context.patient:
        body["patient"] = context.patient
    if context.encounter:
        body["encounter"] = context.encounter
    return body


async def jwks(request: Request) -> Response:
    """The sandbox's public signing keys."""
    return JSONResponse(sandbox_of(request).key.public_jwks())


async def create_launch(request: Request) -> Response:
    """Tests: create a launch context `{"patient", "encounter", "user", "deny"}`."""
    sandbox = sandbox_of(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
    patient, encounter, user = body.get("patient"), body.get("encounter"), body.get("user")
    if patient is not None and not sandbox.store.exists("Patient", str(patient)):
        return JSONResponse({"error": f"unknown patient {patient}"}, status_code=404)
    if encounter is not None and not sandbox.store.exists("Encounter", str(encounter)):
        return JSONResponse({"error": f"unknown encounter {encounter}"}, status_code=404)
    if user is not None and not user_exists(sandbox.store, str(user)):
        return JSONResponse({"error": f"unknown practitioner {user}"}, status_code=404)
    context = Context(patient, encounter, user or default_user(sandbox.store))
    launch = sandbox.auth.create_launch(context, deny=bool(body.get("deny")))
    return JSONResponse({"launch": launch, "iss": sandbox.config.fhir_base,
                         "launch_url": launch_url(sandbox, launch)})


def launch_url(sandbox: Sandbox, launch: str) -> str:
    """The app's launch URL carrying iss and launch (empty when no app URL is configured)."""
    if not sandbox.config.app_launch_url:
        return ""
    return add_query(sandbox.config.app_launch_url,
                     {"iss": sandbox.config.fhir_base, "launch": launch})


async def revoke(request: Request) -> Response:
    """Tests: revoke an access or refresh token `{"token": ...}`."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("token"), str):
        return JSONResponse({"error": 'send {"token": "..."}'}, status_code=400)
    return JSONResponse({"revoked": sandbox_of(request).auth.revoke(body["token"])})


routes = [
    Route("/auth/authorize", authorize, methods=["GET", "POST"]),
    Route("/auth/token", token, methods=["POST"]),
    Route("/auth/jwks", jwks, methods=["GET"]),
    Route("/_sandbox/launch", create_launch, methods=["POST"]),
    Route("/_sandbox/revoke", revoke, methods=["POST"]),
]
