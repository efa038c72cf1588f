"""Calls to an EHR's token endpoint through authlib's OAuth 2 client, and id_token verification.

authlib's AsyncOAuth2Client (on httpx2) builds each grant's request and authenticates the app: a public client
sends its client_id, a confidential one a private_key_jwt assertion (`keys.SmartPrivateKeyJWT`). What the EHR
answers is checked here first (SMART's fields, and messages a user can act on), then parsed by authlib.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from functools import lru_cache

import httpx
import httpx2
from authlib.common.urls import url_decode
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.auth import ClientAuth
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from smart_app.errors import EhrError, LaunchError
from smart_app.launch.keys import SmartPrivateKeyJWT

RETRY = "Try again in a minute by relaunching from the chart."


@dataclass(frozen=True)
class ClientIdentity:
    """Who the app is at one token endpoint: a public client id, or a private_key_jwt client with its key."""

    client_id: str
    key: RSAKey | ECKey | None = None
    kid: str = ""
    alg: str = ""

    def auth_method(self, token_endpoint: str) -> SmartPrivateKeyJWT | str:
        """The authlib client-authentication method: "none" (client_id in the form) or a signed assertion."""
        if self.key is None:
            return "none"
        return SmartPrivateKeyJWT(token_endpoint, self.kid, self.alg)


@dataclass(frozen=True)
class TokenResponse:
    """The parts of a SMART token response the app uses."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None
    id_token: str | None
    patient: str | None
    encounter: str | None
    need_patient_banner: bool
    smart_style_url: str | None
    # Other string parameters of the response: launch context a site adds (Epic lets organizations add some).
    extra: dict[str, str] = field(default_factory=dict)


# Parameters the SMART and OAuth specifications define; anything else in a token response is site launch data.
KNOWN_PARAMETERS = frozenset({
    "access_token", "token_type", "expires_in", "scope", "refresh_token", "id_token", "patient", "encounter",
    "need_patient_banner", "smart_style_url", "fhirContext", "intent", "tenant", "state", "__typename"})


def parse_token_response(body: object) -> TokenResponse:
    """Check a token response's shape; LaunchError names what is missing."""
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise LaunchError("The EHR's token response carries no access token.",
                          "Relaunch from the chart; if it happens again, tell the EHR administrator.")
    if str(body.get("token_type", "")).lower() != "bearer":
        raise LaunchError(f"The EHR issued a {body.get('token_type')!r} token; the app needs Bearer.",
                          "Tell the EHR administrator.")
    try:
        expires_in = int(body.get("expires_in", 300))
    except (TypeError, ValueError) as exc:
        raise LaunchError("The EHR's token response has an unreadable expires_in.",
                          "Tell the EHR administrator.") from exc

    def text(key: str) -> str | None:
        value = body.get(key)
        return str(value) if value not in (None, "") else None

    return TokenResponse(
        access_token=body["access_token"], expires_in=expires_in, scope=str(body.get("scope", "")),
        refresh_token=text("refresh_token"), id_token=text("id_token"), patient=text("patient"),
        encounter=text("encounter"),
        need_patient_banner=body.get("need_patient_banner", True) is not False,
        smart_style_url=text("smart_style_url"),
        extra={k: v for k, v in body.items() if k not in KNOWN_PARAMETERS and isinstance(v, str) and len(v) <= 200})


def client_auth_fields(client: ClientIdentity, token_endpoint: str) -> dict[str, str]:
    """The form fields authlib adds to a token request to authenticate the app (what the EHR receives)."""
    auth = ClientAuth(client.client_id, client.key, client.auth_method(token_endpoint))
    _, _, body = auth.prepare("POST", token_endpoint, {}, "")
    return dict(url_decode(body))


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    # Building the trust store takes tens of milliseconds; one context serves every token client of the process.
    return httpx2.create_ssl_context()


def _timeout(http: httpx.AsyncClient) -> httpx2.Timeout:
    """The app's EHR timeouts, carried over to authlib's (httpx2) client."""
    limits = http.timeout
    return httpx2.Timeout(connect=limits.connect, read=limits.read, write=limits.write, pool=limits.pool)


def _check_answer(response: httpx2.Response) -> httpx2.Response:
    """authlib's access_token_response hook: refuse an error or a malformed token before authlib parses it."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 500:
        raise EhrError(f"The EHR's token endpoint failed with HTTP {response.status_code}.", RETRY)
    if response.status_code != 200:
        detail = (body.get("error_description") or body.get("error")) if isinstance(body, dict) else None
        raise LaunchError(f"The EHR refused to issue a token: {detail or response.status_code}.",
                          "Relaunch the app from the patient's chart.")
    parse_token_response(body)
    return response


async def request_token(http: httpx.AsyncClient, token_endpoint: str, form: dict[str, str],
                        client: ClientIdentity) -> TokenResponse:
    """Ask for a token (the grant in `form`) as `client`; EhrError when unreachable, LaunchError when refused.

    authlib's client runs on httpx2, so it opens its own connection; `http`, the app's EHR client, lends it its
    timeouts and event hooks (whatever watches the app's EHR traffic sees the token request too).
    """
    grant = dict(form)
    grant_type = grant.pop("grant_type")
    hooks = {name: list(functions) for name, functions in http.event_hooks.items()}
    async with AsyncOAuth2Client(client.client_id, client.key, token_endpoint_auth_method=client.auth_method(
            token_endpoint), timeout=_timeout(http), event_hooks=hooks, verify=_tls_context(),
            follow_redirects=False) as oauth:
        oauth.register_compliance_hook("access_token_response", _check_answer)
        oauth.register_compliance_hook("refresh_token_response", _check_answer)
        try:
            if grant_type == "refresh_token":
                token = await oauth.refresh_token(token_endpoint, refresh_token=grant.pop("refresh_token"), **grant)
            else:
                token = await oauth.fetch_token(token_endpoint, grant_type=grant_type, **grant)
        except httpx2.HTTPError as exc:
            raise EhrError(f"The EHR's token endpoint could not be reached ({type(exc).__name__}).", RETRY) from exc
        except OAuthError as exc:
            # A 200 answer that still names an OAuth error.
            raise LaunchError(f"The EHR refused to issue a token: {exc.description or exc.error}.",
                              "Relaunch the app from the patient's chart.") from exc
    return parse_token_response(dict(token))


async def verify_id_token(http: httpx.AsyncClient, id_token: str, jwks_uri: str, issuer: str,
                          client_id: str, nonce: str) -> dict[str, object]:
    """Verify the id_token's signature and claims; return its claims (fhirUser among them)."""
    if not jwks_uri:
        raise LaunchError("The EHR sent an id_token but publishes no jwks_uri to check it.",
                          "Tell the EHR administrator.")
    try:
        response = await http.get(jwks_uri)
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise EhrError("The EHR's signing keys could not be fetched.",
                       "Relaunch from the chart in a minute.") from exc
    try:
        token = jwt.decode(id_token, keys, algorithms=["RS256", "RS384", "ES256", "ES384"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True}, leeway=60,
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise LaunchError(f"The EHR's identity token did not verify ({exc}).",
                          "Relaunch from the chart; if it happens again, tell the EHR "
                          "administrator.") from exc
    return dict(token.claims)
