"""Month-end jobs under a backend app registered apart from the launch client, as Epic registers them.

The sandbox EHR knows two clients: the public client the chart launches, and a backend client with the app's
JWKS. The organization file names the second as `backend_client_id`; SMART Backend Services then
authenticate as it, with the app's own key, over real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from smart_app.crypto import TokenBox
from smart_app.db import transaction
from smart_app.errors import ConfigError, LaunchError
from smart_app.launch.backend import backend_token
from smart_app.launch.flow import LaunchDeps
from smart_app.launch.keys import generate_key, public_jwks
from smart_app.launch.organizations import Organization, parse_organization, save_organizations
from smart_app.paths import data_path
from smart_app.sandbox import SandboxClient, SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from tests.databases import one_transaction, sessions_for
from tests.live_server import serve
from tests.stack import TEST_SECRET

LAUNCH_CLIENT, BACKEND_CLIENT = "chart-app", "chart-app-backend"


@pytest.fixture
def ehr(database_url: str) -> Iterator[tuple[str, str]]:
    """(database URL, sandbox base URL) with the app's key registered for the backend client only."""
    with one_transaction(database_url) as db:
        generate_key(db, TokenBox(TEST_SECRET))
        jwks = public_jwks(db)
    clients = [SandboxClient(LAUNCH_CLIENT, ["http://127.0.0.1:9/callback"]),
               SandboxClient(BACKEND_CLIENT, [], auth_method="private_key_jwt", jwks=jwks)]
    with serve(lambda base: create_sandbox(SandboxConfig(base_url=base, fixtures_dir=data_path("fixtures"),
                                                         clients=clients))) as base:
        yield database_url, base


def organization(base: str, **extra: object) -> Organization:
    return parse_organization({"id": "epic-clinic", "name": "Epic Clinic", "issuer": f"{base}/fhir",
                               "client_id": LAUNCH_CLIENT, "client_auth": "public", **extra}, "epic-clinic.toml")


def token_for(database_url: str, org: Organization) -> str:
    async def run() -> str:
        with sessions_for(database_url) as factory:
            with transaction(factory) as db:
                save_organizations(db, [org])
            async with httpx.AsyncClient(timeout=20) as http:
                deps = LaunchDeps(sessions=factory, http=http, tokens=TokenBox(TEST_SECRET),
                                  redirect_uri="http://127.0.0.1:9/callback", session_lifetime=timedelta(hours=1))
                return await backend_token(deps, org)
    return asyncio.run(run())


def test_backend_services_authenticate_as_the_backend_client(ehr: tuple[str, str]) -> None:
    database_url, base = ehr
    org = organization(base, backend_client_id=BACKEND_CLIENT)
    assert org.backend_client == BACKEND_CLIENT and org.client_id == LAUNCH_CLIENT
    token = token_for(database_url, org)
    log = httpx.get(f"{base}/_sandbox/requests").json()
    (request,) = [r for r in log if r["path"] == "/auth/token"]
    assert request["status"] == 200 and request["client_id"] == BACKEND_CLIENT
    patient = httpx.get(f"{base}/fhir/Patient/ccm-two-chronic", headers={"Authorization": f"Bearer {token}"})
    assert patient.status_code == 200, "the token reads the chart with system scopes"


def test_a_public_launch_client_without_a_backend_client_is_told_what_to_register(ehr: tuple[str, str]) -> None:
    database_url, base = ehr
    with pytest.raises(ConfigError, match="public client") as caught:
        token_for(database_url, organization(base))
    assert "backend_client_id" in caught.value.hint


def test_a_backend_client_the_ehr_does_not_know_is_refused_with_the_ehrs_reason(ehr: tuple[str, str]) -> None:
    database_url, base = ehr
    org = replace(organization(base), backend_client_id="nobody-registered-this")
    with pytest.raises(LaunchError, match="refused to issue a token: .*'nobody-registered-this'") as caught:
        token_for(database_url, org)
    assert "JWKS URL" in caught.value.hint and "relaunch" not in caught.value.hint.lower()
