"""Helpers for driving the sandbox EHR over HTTP like a SMART app would."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
import warnings
from urllib.parse import parse_qs, urlsplit

import authlib.deprecate  # noqa: F401  (installs its "always" filter before ours below)
import httpx

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # authlib.jose warns on import
    from authlib.jose import JsonWebKey, JsonWebToken

REDIRECT_URI = "http://127.0.0.1:9/callback"
APP_LAUNCH_URL = "http://127.0.0.1:9/launch"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EHR_SCOPE = ("launch openid fhirUser offline_access patient/Patient.rs patient/Condition.rs "
             "patient/Observation.rs patient/Encounter.rs patient/Practitioner.rs "
             "patient/Observation.c patient/Task.cu user/Practitioner.rs")


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_launch(http: httpx.Client, patient: str = "alpha", **extra: object) -> str:
    """A launch token from the sandbox's test endpoint."""
    response = http.post("/_sandbox/launch", json={"patient": patient, **extra})
    response.raise_for_status()
    return response.json()["launch"]


def authorize(http: httpx.Client, base: str, client_id: str = "public-app",
              scope: str = EHR_SCOPE, launch: str | None = None, challenge: str = "",
              **overrides: str | None) -> httpx.Response:
    """GET /auth/authorize with sensible defaults; overrides set to None are left out."""
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": scope, "state": "st-" + secrets.token_hex(4), "aud": f"{base}/fhir",
        "launch": launch, "code_challenge": challenge or pkce()[1],
        "code_challenge_method": "S256", "nonce": "n-123",
    }
    params.update(overrides)
    return http.get("/auth/authorize", params={k: v for k, v in params.items() if v is not None})


def redirect_params(response: httpx.Response) -> dict[str, str]:
    """The query of a redirect back to the app, asserting it goes to the registered URI."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(http: httpx.Client, base: str, client_id: str = "public-app",
             scope: str = EHR_SCOPE, patient: str = "alpha",
             **launch_extra: object) -> tuple[str, str]:
    """(code, verifier) for an EHR launch of `patient`."""
    verifier, challenge = pkce()
    launch = new_launch(http, patient, **launch_extra)
    params = redirect_params(authorize(http, base, client_id, scope, launch, challenge))
    assert "code" in params, params
    return params["code"], verifier


def exchange(http: httpx.Client, code: str, verifier: str | None,
             client_id: str = "public-app", assertion: str | None = None) -> httpx.Response:
    """POST /auth/token for an authorization code."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier is not None:
        form["code_verifier"] = verifier
    if assertion:
        form.update(client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
    else:
        form["client_id"] = client_id
    return http.post("/auth/token", data=form)


def login(http: httpx.Client, base: str, scope: str = EHR_SCOPE, patient: str = "alpha",
          client_id: str = "public-app") -> dict:
    """A full EHR launch for a public client: the token response."""
    code, verifier = get_code(http, base, client_id, scope, patient)
    response = exchange(http, code, verifier, client_id)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: dict | str) -> dict[str, str]:
    """Authorization header for a token response or access token."""
    value = token if isinstance(token, str) else token["access_token"]
    return {"Authorization": f"Bearer {value}"}


def generate_key(kind: str, kid: str):
    """A private JWK (authlib) of kind "RSA" (2048) or "EC" (P-384)."""
    if kind == "RSA":
        key = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": kid})
    else:
        key = JsonWebKey.generate_key("EC", "P-384", is_private=True, options={"kid": kid})
    return key


def public_jwks(*keys) -> dict:
    """A JWKS with the public halves of `keys`."""
    return {"keys": [k.as_dict(is_private=False) for k in keys]}


def client_assertion(key, alg: str, client_id: str, aud: str, exp_in: float = 240,
                     jti: str | None = None, **claims: object) -> str:
    """A signed private_key_jwt assertion (authlib, independent of the sandbox's verifier)."""
    now = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + int(exp_in),
               "iat": now, "jti": jti or str(uuid.uuid4()), **claims}
    header = {"alg": alg, "kid": key.as_dict()["kid"], "typ": "JWT"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return JsonWebToken([alg]).encode(header, payload, key).decode()


def decode_jwt(token: str, jwks: dict) -> dict:
    """Verify a JWT with authlib against a JWKS and return its claims."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        claims = JsonWebToken(["RS256"]).decode(token, JsonWebKey.import_key_set(jwks))
        claims.validate()
        return dict(claims)
