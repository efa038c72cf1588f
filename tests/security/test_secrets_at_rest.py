"""Threat: someone reads the database (a backup, a replica, a support dump) and takes the EHR tokens or keys.

After a launch (access and refresh tokens), a Backend Services token and with signing keys in place,
every column of every table is read back as text: no access token, refresh token, private key
parameter or browser session handle may appear in it. Only the app's secret key opens them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import inspect, text

from smart_app.crypto import TokenBox
from smart_app.errors import SessionExpired
from smart_app.launch.backend import backend_token
from smart_app.launch.flow import LaunchDeps
from smart_app.launch.models import AppSession, BackendTokenRow, PendingLaunch, SigningKey
from tests.databases import engine_for, sessions_for
from tests.security.helpers import database, from_address, launch
from tests.stack import TEST_SECRET, Stack, launch_page

PRIVATE_PARAMS = ("d", "p", "q", "dp", "dq", "qi")


def fetch_backend_token(stack: Stack) -> str:
    """Run the month-end job's token request (client_credentials with a client assertion) for real."""

    async def run() -> str:
        with sessions_for(stack.settings.database_url) as sessions:
            async with httpx.AsyncClient(timeout=20) as http:
                deps = LaunchDeps(sessions=sessions, http=http, tokens=TokenBox(TEST_SECRET),
                                  redirect_uri=stack.settings.redirect_uri, session_lifetime=timedelta(hours=1))
                return await backend_token(deps, stack.organization)

    return asyncio.run(run())


def every_stored_value(stack: Stack) -> str:
    """Every row of every table, each value as text, in one string."""
    parts: list[str] = []
    with engine_for(stack.settings.database_url) as engine, engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                parts.extend(json.dumps(v, default=str) if isinstance(v, dict | list) else str(v) for v in row)
    return "\n".join(parts)


def test_tokens_and_private_keys_are_not_readable_in_the_database(secure_stack: Stack) -> None:
    session = launch(secure_stack, "ccm-two-chronic", user="pr-nurse")
    backend = fetch_backend_token(secure_stack)
    box = TokenBox(TEST_SECRET)
    with database(secure_stack) as db:
        row = db.get(AppSession, session.id_hash)
        assert row is not None and row.refresh_token_enc, "the launch stored an access and a refresh token"
        secrets = {"access token": box.open(row.access_token_enc), "refresh token": box.open(row.refresh_token_enc),
                   "backend token": backend, "session handle": session.handle}
        stored_backend = db.get(BackendTokenRow, secure_stack.organization.id)
        assert stored_backend is not None and box.open(stored_backend.access_token_enc) == backend
        keys = list(db.query(SigningKey))
        assert keys, "the app has signing keys"
        for key in keys:
            private = box.open_json(key.private_jwk_enc)
            for name in PRIVATE_PARAMS:
                if name in private:
                    secrets[f"{key.kid} private {name}"] = private[name]
            assert not set(PRIVATE_PARAMS) & set(key.public_jwk), "the published half has no private parameter"
        encrypted = [row.access_token_enc, row.refresh_token_enc, stored_backend.access_token_enc,
                     keys[0].private_jwk_enc]
    for value in secrets.values():
        assert len(value) >= 16
    dump = every_stored_value(secure_stack)
    assert session.id_hash in dump, "the dump covers app_sessions"
    leaked = [name for name, value in secrets.items() if value in dump]
    assert leaked == [], f"readable in the database: {leaked}"
    # The ciphertexts open only with the app's secret key, not with another one.
    other = TokenBox("another-secret-key-that-is-long-enough-for-the-app-000000")
    for ciphertext in encrypted:
        with pytest.raises(SessionExpired):
            other.open(ciphertext)


def test_the_pkce_verifier_of_a_launch_in_flight_is_encrypted(secure_stack: Stack) -> None:
    # A verifier read from the database, with a code caught on its way back, would redeem the code.
    with from_address("127.0.0.35") as client:
        started = client.get(f"{secure_stack.app_url}/launch", params={"iss": secure_stack.fhir_base, "launch": "x"})
    authorize_url, _, _ = launch_page(started)
    query = parse_qs(urlsplit(authorize_url).query)
    state, challenge = query["state"][0], query["code_challenge"][0]
    with database(secure_stack) as db:
        stored = db.get(PendingLaunch, state).code_verifier
    verifier = TokenBox(TEST_SECRET).open(stored)
    assert create_s256_code_challenge(verifier) == challenge, "the stored value opens to the launch's verifier"
    assert verifier not in every_stored_value(secure_stack)
