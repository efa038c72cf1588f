"""The authorize endpoint: what it refuses, and how (error page or redirect)."""

from __future__ import annotations

import httpx

from tests.sandbox.helpers import EHR_SCOPE, authorize, new_launch, pkce, redirect_params


def test_unknown_client_gets_an_error_page_not_a_redirect(http: httpx.Client, base: str) -> None:
    response = authorize(http, base, client_id="nobody", launch=new_launch(http))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]


def test_unregistered_redirect_uri_gets_an_error_page(http: httpx.Client, base: str) -> None:
    response = authorize(http, base, launch=new_launch(http),
                         redirect_uri="https://evil.example/callback")
    assert response.status_code == 400
    assert "location" not in response.headers


def test_missing_pkce_is_refused(http: httpx.Client, base: str) -> None:
    params = redirect_params(authorize(http, base, launch=new_launch(http), code_challenge=None,
                                       code_challenge_method=None, state="s1"))
    assert params["error"] == "invalid_request"
    assert params["state"] == "s1"
    assert "code" not in params


def test_plain_pkce_is_refused(http: httpx.Client, base: str) -> None:
    verifier, _ = pkce()
    params = redirect_params(authorize(http, base, launch=new_launch(http),
                                       code_challenge=verifier, code_challenge_method="plain"))
    assert params["error"] == "invalid_request"


def test_wrong_aud_is_refused(http: httpx.Client, base: str) -> None:
    params = redirect_params(authorize(http, base, launch=new_launch(http),
                                       aud="https://other.example/fhir"))
    assert params["error"] == "invalid_request"
    assert "aud" in params["error_description"]


def test_missing_state_is_refused(http: httpx.Client, base: str) -> None:
    params = redirect_params(authorize(http, base, launch=new_launch(http), state=None))
    assert params["error"] == "invalid_request"


def test_unknown_launch_is_refused(http: httpx.Client, base: str) -> None:
    params = redirect_params(authorize(http, base, launch="not-a-launch"))
    assert params["error"] == "invalid_request"
    assert "launch" in params["error_description"]


def test_wrong_response_type(http: httpx.Client, base: str) -> None:
    params = redirect_params(authorize(http, base, launch=new_launch(http), response_type="token"))
    assert params["error"] == "unsupported_response_type"


def test_user_denies(http: httpx.Client, base: str) -> None:
    params = redirect_params(authorize(http, base, launch=new_launch(http, deny=True),
                                       state="deny-state"))
    assert params == {"error": "access_denied", "state": "deny-state",
                      "error_description": params["error_description"]}


def test_unknown_launch_patient_is_refused_by_the_launch_endpoint(http: httpx.Client) -> None:
    assert http.post("/_sandbox/launch", json={"patient": "nobody"}).status_code == 404


def test_launch_endpoint_answers_iss_and_launch_url(http: httpx.Client, base: str) -> None:
    body = http.post("/_sandbox/launch", json={"patient": "alpha", "encounter": "alpha-enc-2",
                                               "user": "pract-nurse"}).json()
    assert body["iss"] == f"{base}/fhir"
    assert body["launch_url"].startswith("http://127.0.0.1:9/launch?iss=")
    assert f"launch={body['launch']}" in body["launch_url"]


def test_standalone_launch_shows_a_patient_picker(http: httpx.Client, base: str) -> None:
    scope = "launch/patient openid fhirUser patient/Condition.rs"
    picker = authorize(http, base, scope=scope, launch=None)
    assert picker.status_code == 200
    assert "sandbox_patient=alpha" in picker.text.replace("&amp;", "&")
    params = redirect_params(authorize(http, base, scope=scope, launch=None,
                                       sandbox_patient="beta"))
    assert "code" in params


def test_scopes_are_limited_to_what_the_client_may_have(http: httpx.Client, base: str) -> None:
    from tests.sandbox.helpers import exchange, get_code

    code, verifier = get_code(http, base, "limited-app", EHR_SCOPE)
    body = exchange(http, code, verifier, "limited-app").json()
    assert set(body["scope"].split()) == {"launch", "openid", "fhirUser", "patient/Patient.rs"}
