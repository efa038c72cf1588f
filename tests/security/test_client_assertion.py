"""Threat: a client assertion captured in transit (a proxy log, a TLS-inspecting middlebox) is replayed.

The app's own client authentication (`flow.client_auth_form`, what the launch and refresh send) is
used at the sandbox EHR's token endpoint: it works once, the same assertion is refused the second
time (the EHR remembers its jti), and every assertion expires within five minutes of being made.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from smart_app.crypto import TokenBox
from smart_app.launch.flow import LaunchDeps, client_auth_form
from smart_app.launch.keys import ASSERTION_TYPE
from tests.databases import sessions_for
from tests.stack import TEST_SECRET, Stack


def app_client_auth(stack: Stack, token_url: str) -> dict[str, str]:
    """The form fields the app itself sends to authenticate at `token_url`."""

    async def run() -> dict[str, str]:
        with sessions_for(stack.settings.database_url) as sessions:
            async with httpx.AsyncClient() as http:
                deps = LaunchDeps(sessions=sessions, http=http, tokens=TokenBox(TEST_SECRET),
                                  redirect_uri=stack.settings.redirect_uri, session_lifetime=timedelta(hours=1))
                return client_auth_form(deps, stack.organization, token_url)

    return asyncio.run(run())


def test_a_client_assertion_works_once(secure_stack: Stack) -> None:
    token_url = f"{secure_stack.sandbox_url}/auth/token"
    form = {"grant_type": "client_credentials", "scope": "system/Patient.rs",
            **app_client_auth(secure_stack, token_url)}
    assert form["client_assertion_type"] == ASSERTION_TYPE
    first = httpx.post(token_url, data=form)
    assert first.status_code == 200, first.text
    replay = httpx.post(token_url, data=form)
    assert replay.status_code == 401
    assert replay.json() == {"error": "invalid_client", "error_description": "client_assertion jti was already used"}


def test_client_assertions_are_short_lived_signed_and_unique(secure_stack: Stack) -> None:
    token_url = f"{secure_stack.sandbox_url}/auth/token"
    published = KeySet.import_key_set(httpx.get(f"{secure_stack.app_url}/.well-known/jwks.json").json())
    made_at = time.time()
    seen = set()
    for _ in range(3):
        assertion = app_client_auth(secure_stack, token_url)["client_assertion"]
        token = jwt.decode(assertion, published, algorithms=["RS384", "ES384"])  # verified with the public JWKS
        header, claims = token.header, token.claims
        assert header["typ"] == "JWT" and header["alg"] in ("RS384", "ES384") and header["kid"]
        assert claims["iss"] == claims["sub"] == secure_stack.organization.client_id
        assert claims["aud"] == token_url
        assert claims["exp"] - claims["iat"] <= 300, "SMART caps an assertion's life at five minutes"
        assert claims["exp"] <= made_at + 300 + 2
        assert claims["jti"] not in seen and len(claims["jti"]) >= 16
        seen.add(claims["jti"])
