"""The token endpoint: code exchange, PKCE, private_key_jwt, refresh, client_credentials."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sandbox.conftest import Keys
from tests.sandbox.helpers import (
    ASSERTION_TYPE,
    EHR_SCOPE,
    bearer,
    client_assertion,
    decode_jwt,
    exchange,
    get_code,
    login,
)


def test_public_client_happy_path(http: httpx.Client, base: str) -> None:
    code, verifier = get_code(http, base, encounter="alpha-enc-2", user="pract-nurse")
    response = exchange(http, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["patient"] == "alpha"
    assert body["encounter"] == "alpha-enc-2"
    assert body["need_patient_banner"] is False
    assert body["smart_style_url"] == f"{base}/ehr/smart-style.json"
    assert set(body["scope"].split()) == set(EHR_SCOPE.split())
    assert body["refresh_token"]
    claims = decode_jwt(body["id_token"], http.get("/auth/jwks").json())
    assert claims["iss"] == f"{base}/fhir"
    assert claims["aud"] == "public-app"
    assert claims["sub"] == "pract-nurse"
    assert claims["fhirUser"] == f"{base}/fhir/Practitioner/pract-nurse"
    assert claims["nonce"] == "n-123"
    assert claims["exp"] > time.time()
    patient = http.get("/fhir/Patient/alpha", headers=bearer(body))
    assert patient.status_code == 200


def test_default_user_is_the_care_manager(http: httpx.Client, base: str) -> None:
    body = login(http, base)
    claims = decode_jwt(body["id_token"], http.get("/auth/jwks").json())
    assert claims["sub"] == "pract-care-manager"
    assert "encounter" not in body


def test_code_is_single_use(http: httpx.Client, base: str) -> None:
    code, verifier = get_code(http, base)
    first = exchange(http, code, verifier)
    assert first.status_code == 200
    second = exchange(http, code, verifier)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    # The replay also revokes what the first exchange issued.
    revoked = http.get("/fhir/Patient/alpha", headers=bearer(first.json()))
    assert revoked.status_code == 401


@pytest.mark.parametrize("verifier", [None, "wrong" * 10])
def test_missing_or_wrong_code_verifier(http: httpx.Client, base: str,
                                        verifier: str | None) -> None:
    code, _ = get_code(http, base)
    response = exchange(http, code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["error_description"]


def test_redirect_uri_must_match(http: httpx.Client, base: str) -> None:
    code, verifier = get_code(http, base)
    response = http.post("/auth/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "client_id": "public-app", "redirect_uri": "http://127.0.0.1:9/other"})
    assert response.json()["error"] == "invalid_grant"


def test_unknown_client_and_grant_type(http: httpx.Client) -> None:
    response = http.post("/auth/token", data={"grant_type": "authorization_code",
                                              "client_id": "nobody", "code": "x"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    response = http.post("/auth/token", data={"grant_type": "password",
                                              "client_id": "public-app"})
    assert response.json()["error"] == "unsupported_grant_type"


def test_confidential_client_needs_an_assertion(http: httpx.Client, base: str) -> None:
    code, verifier = get_code(http, base, "confidential-rs")
    response = exchange(http, code, verifier, client_id="confidential-rs")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(("client_id", "key_name", "alg"),
                         [("confidential-rs", "rsa", "RS384"), ("confidential-es", "ec", "ES384")])
def test_private_key_jwt_happy_path(http: httpx.Client, base: str, keys: Keys,
                                    client_id: str, key_name: str, alg: str) -> None:
    code, verifier = get_code(http, base, client_id)
    assertion = client_assertion(getattr(keys, key_name), alg, client_id, f"{base}/auth/token")
    response = exchange(http, code, verifier, assertion=assertion)
    assert response.status_code == 200, response.text
    assert response.json()["patient"] == "alpha"
    log = http.get("/_sandbox/requests").json()
    assert any(e["path"] == "/auth/token" and e["client_id"] == client_id for e in log)


def _assertion_error(http: httpx.Client, base: str, client_id: str, assertion: str) -> dict:
    code, verifier = get_code(http, base, client_id)
    response = exchange(http, code, verifier, assertion=assertion)
    assert response.status_code == 401, response.text
    return response.json()


def test_assertion_replay_is_refused(http: httpx.Client, base: str, keys: Keys) -> None:
    assertion = client_assertion(keys.rsa, "RS384", "confidential-rs", f"{base}/auth/token",
                                 jti="fixed-jti-1")
    code, verifier = get_code(http, base, "confidential-rs")
    assert exchange(http, code, verifier, assertion=assertion).status_code == 200
    error = _assertion_error(http, base, "confidential-rs", assertion)
    assert error["error"] == "invalid_client"
    assert "jti" in error["error_description"]


def test_assertion_expiring_too_late_is_refused(http: httpx.Client, base: str,
                                                keys: Keys) -> None:
    assertion = client_assertion(keys.rsa, "RS384", "confidential-rs", f"{base}/auth/token",
                                 exp_in=3600)
    assert "five minutes" in _assertion_error(http, base, "confidential-rs",
                                              assertion)["error_description"]


def test_expired_assertion_is_refused(http: httpx.Client, base: str, keys: Keys) -> None:
    assertion = client_assertion(keys.rsa, "RS384", "confidential-rs", f"{base}/auth/token",
                                 exp_in=-120)
    assert _assertion_error(http, base, "confidential-rs", assertion)["error"] == "invalid_client"


def test_assertion_with_wrong_aud_is_refused(http: httpx.Client, base: str, keys: Keys) -> None:
    assertion = client_assertion(keys.rsa, "RS384", "confidential-rs", f"{base}/fhir")
    assert "aud" in _assertion_error(http, base, "confidential-rs",
                                     assertion)["error_description"]


def test_assertion_signed_by_another_key_is_refused(http: httpx.Client, base: str,
                                                    keys: Keys) -> None:
    assertion = client_assertion(keys.other_rsa, "RS384", "confidential-rs",
                                 f"{base}/auth/token")
    assert _assertion_error(http, base, "confidential-rs", assertion)["error"] == "invalid_client"


def test_assertion_with_rs256_is_refused(http: httpx.Client, base: str, keys: Keys) -> None:
    assertion = client_assertion(keys.rsa, "RS256", "confidential-rs", f"{base}/auth/token")
    assert "alg" in _assertion_error(http, base, "confidential-rs",
                                     assertion)["error_description"]


def test_refresh_token_rotates(http: httpx.Client, base: str) -> None:
    first = login(http, base)
    response = http.post("/auth/token", data={"grant_type": "refresh_token",
                                              "refresh_token": first["refresh_token"],
                                              "client_id": "public-app"})
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["patient"] == "alpha"
    assert http.get("/fhir/Patient/alpha", headers=bearer(second)).status_code == 200
    reused = http.post("/auth/token", data={"grant_type": "refresh_token",
                                            "refresh_token": first["refresh_token"],
                                            "client_id": "public-app"})
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_revoked_tokens_stop_working(http: httpx.Client, base: str) -> None:
    body = login(http, base)
    assert http.post("/_sandbox/revoke", json={"token": body["access_token"]}).json() == {
        "revoked": True}
    response = http.get("/fhir/Patient/alpha", headers=bearer(body))
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]
    assert response.json()["resourceType"] == "OperationOutcome"
    http.post("/_sandbox/revoke", json={"token": body["refresh_token"]})
    refreshed = http.post("/auth/token", data={"grant_type": "refresh_token",
                                               "refresh_token": body["refresh_token"],
                                               "client_id": "public-app"})
    assert refreshed.json()["error"] == "invalid_grant"


def test_no_refresh_token_without_offline_or_online_access(http: httpx.Client, base: str) -> None:
    body = login(http, base, scope="launch patient/Patient.rs")
    assert "refresh_token" not in body
    assert "id_token" not in body


def test_client_credentials(http: httpx.Client, base: str, keys: Keys) -> None:
    assertion = client_assertion(keys.rsa, "RS384", "backend", f"{base}/auth/token")
    response = http.post("/auth/token", data={
        "grant_type": "client_credentials", "scope": "system/*.rs system/Claim.c patient/x.rs",
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "system/*.rs system/Claim.c"
    assert "patient" not in body and "refresh_token" not in body
    everyone = http.get("/fhir/Condition", headers=bearer(body)).json()
    assert {e["resource"]["subject"]["reference"] for e in everyone["entry"]} >= {
        "Patient/alpha", "Patient/beta"}
    denied = http.post("/fhir/Observation", headers=bearer(body),
                       json={"resourceType": "Observation", "status": "final"})
    assert denied.status_code == 403


def test_client_credentials_refused_for_public_clients(http: httpx.Client) -> None:
    response = http.post("/auth/token", data={"grant_type": "client_credentials",
                                              "client_id": "public-app", "scope": "system/*.rs"})
    assert response.json()["error"] == "unauthorized_client"


def test_system_scopes_are_not_granted_through_authorize(http: httpx.Client, base: str) -> None:
    body = login(http, base, scope="launch system/*.rs patient/Patient.rs")
    assert body["scope"] == "launch patient/Patient.rs"

