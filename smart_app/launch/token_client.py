"""Calls to an EHR's token endpoint (code exchange and refresh) and id_token verification."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from smart_app.errors import EhrError, LaunchError


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


async def request_token(http: httpx.AsyncClient, token_endpoint: str,
                        form: dict[str, str]) -> TokenResponse:
    """POST a grant to the token endpoint; EhrError when unreachable, LaunchError when refused."""
    try:
        response = await http.post(token_endpoint, data=form,
                                    headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise EhrError(f"The EHR's token endpoint could not be reached ({type(exc).__name__}).",
                       "Try again in a minute by relaunching from the chart.") from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        detail = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
        if response.status_code >= 500:
            raise EhrError(f"The EHR's token endpoint failed with HTTP {response.status_code}.",
                           "Try again in a minute by relaunching from the chart.")
        raise LaunchError(f"The EHR refused to issue a token: {detail or response.status_code}.",
                          "Relaunch the app from the patient's chart.")
    return parse_token_response(body)


async def verify_id_token(http: httpx.AsyncClient, id_token: str, jwks_uri: str, issuer: str,
                          client_id: str, nonce: str) -> dict:
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
