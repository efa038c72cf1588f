"""The token client (authlib's AsyncOAuth2Client with SMART's private_key_jwt) against the sandbox EHR over real HTTP.

The sandbox's fault hooks make its token endpoint fail the ways a real one does; each failure reaches the user as
the app's own error with a message and a hint, never as an httpx or authlib exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from joserfc.jwk import RSAKey

from smart_app.errors import EhrError, LaunchError
from smart_app.launch.token_client import ClientIdentity, TokenResponse, client_auth_fields, request_token
from smart_app.paths import data_path
from smart_app.sandbox import SandboxClient, SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from tests.live_server import serve

BACKEND = "month-end-jobs"
KEY = RSAKey.generate_key(2048, parameters={"kid": "test-rs384", "alg": "RS384", "use": "sig"})


@pytest.fixture(scope="module")
def ehr() -> Iterator[str]:
    """The sandbox's base URL, with a backend client that has KEY's public half registered."""
    jwks = {"keys": [KEY.as_dict(private=False)]}
    clients = [SandboxClient(BACKEND, [], auth_method="private_key_jwt", jwks=jwks)]
    with serve(lambda base: create_sandbox(SandboxConfig(base_url=base, fixtures_dir=data_path("fixtures"),
                                                         clients=clients))) as base:
        yield base


@pytest.fixture(autouse=True)
def no_faults(ehr: str) -> Iterator[None]:
    yield
    httpx.delete(f"{ehr}/_sandbox/faults")


def client_credentials(base: str, scope: str = "system/Patient.rs", client_id: str = BACKEND,
                       seen: list[str] | None = None) -> TokenResponse:
    async def record(request: httpx.Request) -> None:
        if seen is not None:
            seen.append(f"{request.method} {request.url}")

    async def run() -> TokenResponse:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0),
                                     event_hooks={"request": [record]}) as http:
            return await request_token(http, f"{base}/auth/token",
                                       {"grant_type": "client_credentials", "scope": scope},
                                       ClientIdentity(client_id, KEY, "test-rs384", "RS384"))
    return asyncio.run(run())


def arm(base: str, kind: str) -> None:
    response = httpx.post(f"{base}/_sandbox/faults", json={"match": "POST /auth/token", "kind": kind, "count": 1})
    response.raise_for_status()


def test_a_signed_client_gets_a_token_that_reads_the_chart(ehr: str) -> None:
    token = client_credentials(ehr)
    assert token.scope == "system/Patient.rs" and token.expires_in > 0 and token.refresh_token is None
    patient = httpx.get(f"{ehr}/fhir/Patient/ccm-two-chronic",
                        headers={"Authorization": f"Bearer {token.access_token}"})
    assert patient.status_code == 200


def test_each_request_sends_a_new_assertion(ehr: str) -> None:
    client_credentials(ehr)
    client_credentials(ehr)  # the sandbox refuses a repeated jti, so a reused assertion would fail here
    log = httpx.get(f"{ehr}/_sandbox/requests").json()
    answered = [r["status"] for r in log if r["path"] == "/auth/token" and r["client_id"] == BACKEND]
    assert answered[-2:] == [200, 200]


def test_the_app_clients_event_hooks_see_the_token_request(ehr: str) -> None:
    seen: list[str] = []
    client_credentials(ehr, seen=seen)
    assert seen == [f"POST {ehr}/auth/token"]


def test_a_public_client_identifies_itself_by_client_id_only() -> None:
    assert client_auth_fields(ClientIdentity("chart-app"), "https://ehr.example/token") == {"client_id": "chart-app"}


def test_a_refusal_carries_the_ehrs_reason(ehr: str) -> None:
    with pytest.raises(LaunchError, match="refused to issue a token: request at least one system/ scope") as caught:
        client_credentials(ehr, scope="patient/Patient.rs")
    assert "Relaunch" in caught.value.hint


def test_an_unknown_client_is_refused(ehr: str) -> None:
    with pytest.raises(LaunchError, match="refused to issue a token: client_assertion iss is not a registered"):
        client_credentials(ehr, client_id="nobody-registered-this")


@pytest.mark.parametrize("kind", ["500", "503"])
def test_a_failing_token_endpoint_is_the_ehrs_error_with_a_retry_hint(ehr: str, kind: str) -> None:
    arm(ehr, kind)
    with pytest.raises(EhrError, match=f"token endpoint failed with HTTP {kind}") as caught:
        client_credentials(ehr)
    assert "Try again in a minute" in caught.value.hint


def test_a_dropped_connection_names_what_happened(ehr: str) -> None:
    arm(ehr, "drop")
    with pytest.raises(EhrError, match=r"token endpoint could not be reached \(RemoteProtocolError\)"):
        client_credentials(ehr)
