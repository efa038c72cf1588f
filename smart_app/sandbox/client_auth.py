"""Client authentication at the token endpoint: public clients and private_key_jwt assertions."""

from __future__ import annotations

import time

import httpx

from smart_app.sandbox.authstate import AuthState
from smart_app.sandbox.config import SandboxClient, SandboxConfig
from smart_app.sandbox.jose import JoseError, unverified_token, verify_jws

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS384", "ES384")
MAX_LIFETIME = 300  # SMART: the assertion's exp at most five minutes ahead
CLOCK_SKEW = 10


class OAuthError(Exception):
    """An OAuth error answered as `{"error", "error_description"}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


async def _client_jwks(client: SandboxClient) -> dict:
    if client.jwks:
        return client.jwks
    if not client.jwks_url:
        raise OAuthError("invalid_client", "the client has no registered keys", 401)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(client.jwks_url)
            response.raise_for_status()
            jwks = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OAuthError("invalid_client", f"could not fetch the client's JWKS: {exc}", 401) from exc
    if not isinstance(jwks, dict):
        raise OAuthError("invalid_client", "the client's JWKS is not a JSON object", 401)
    return jwks


async def verify_assertion(config: SandboxConfig, state: AuthState,
                           assertion: str) -> SandboxClient:
    """The client a private_key_jwt assertion authenticates; OAuthError otherwise."""
    try:
        _, unverified = unverified_token(assertion)
    except JoseError as exc:
        raise OAuthError("invalid_client", f"malformed client_assertion: {exc}", 401) from exc
    client = config.client(unverified.get("iss"))
    if client is None or client.auth_method != "private_key_jwt":
        raise OAuthError("invalid_client",
                         "client_assertion iss is not a registered private_key_jwt client", 401)
    try:
        _, claims = verify_jws(assertion, await _client_jwks(client), ASSERTION_ALGS)
    except JoseError as exc:
        raise OAuthError("invalid_client", f"client_assertion rejected: {exc}", 401) from exc
    _check_claims(config, client, claims)
    if not state.remember_jti(client.client_id, str(claims["jti"]), float(claims["exp"])):
        raise OAuthError("invalid_client", "client_assertion jti was already used", 401)
    return client


def _check_claims(config: SandboxConfig, client: SandboxClient, claims: dict) -> None:
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise OAuthError("invalid_client", "client_assertion iss and sub must be the client_id",
                         401)
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if config.token_url not in audiences:
        raise OAuthError("invalid_client",
                         f"client_assertion aud must be the token endpoint {config.token_url}",
                         401)
    exp = claims.get("exp")
    now = time.time()
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise OAuthError("invalid_client", "client_assertion needs a numeric exp", 401)
    if exp < now - CLOCK_SKEW:
        raise OAuthError("invalid_client", "client_assertion has expired", 401)
    if exp > now + MAX_LIFETIME + CLOCK_SKEW:
        raise OAuthError("invalid_client",
                         "client_assertion exp is more than five minutes ahead", 401)
    if not claims.get("jti"):
        raise OAuthError("invalid_client", "client_assertion needs a jti", 401)


async def authenticate(config: SandboxConfig, state: AuthState,
                       form: dict[str, str]) -> SandboxClient:
    """The client making a token request, by assertion or (public clients) by client_id."""
    assertion = form.get("client_assertion")
    if assertion or form.get("client_assertion_type"):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}",
                             401)
        if not assertion:
            raise OAuthError("invalid_client", "client_assertion is missing", 401)
        signed = await verify_assertion(config, state, assertion)
        if form.get("client_id") and form["client_id"] != signed.client_id:
            raise OAuthError("invalid_client", "client_id does not match the assertion", 401)
        return signed
    client = config.client(form.get("client_id"))
    if client is None:
        raise OAuthError("invalid_client", "unknown client_id", 401)
    if client.auth_method != "public":
        raise OAuthError("invalid_client",
                         "this client must authenticate with a private_key_jwt assertion", 401)
    return client
