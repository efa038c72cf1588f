"""The SMART EHR launch end to end: sandbox chart -> app /launch -> EHR authorize -> /callback -> page."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from smart_app.crypto import TokenBox
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.paths import data_path
from tests.databases import one_transaction
from tests.security.test_client_assertion import app_client_auth
from tests.stack import (
    TEST_SECRET,
    Stack,
    bearer,
    finish_launch,
    follow_launch,
    iframe_src,
    launch_page,
    new_browser,
    open_chart,
    stored_sessions,
)


def fixture_bundle(patient_id: str) -> list[dict]:
    bundle = json.loads((data_path("fixtures") / f"{patient_id}.json").read_text())
    return [entry["resource"] for entry in bundle["entry"]]


def expected_name(resources: list[dict]) -> str:
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    name = patient["name"][0]
    return " ".join([*name.get("given", []), name["family"]])


def active_problem_texts(resources: list[dict]) -> list[str]:
    texts = []
    for r in resources:
        if r["resourceType"] != "Condition":
            continue
        status = r.get("clinicalStatus", {}).get("coding", [{}])[0].get("code")
        verification = r.get("verificationStatus", {}).get("coding", [{}])[0].get("code")
        if status == "active" and verification != "entered-in-error":
            texts.append(r["code"].get("text") or r["code"]["coding"][0]["display"])
    return texts


def client_auth(stack: Stack) -> dict[str, str]:
    """The app's own client authentication, so only the PKCE verifier is wrong."""
    return app_client_auth(stack, f"{stack.sandbox_url}/auth/token")


def sandbox_launch_url(stack: Stack, **context: object) -> str:
    response = httpx.post(f"{stack.sandbox_url}/_sandbox/launch", json=context)
    response.raise_for_status()
    return response.json()["launch_url"]


@pytest.mark.parametrize("patient_id", ["ccm-two-chronic", "bhi-depression-phq9", "acute-only",
                                        "complex-ccm-high"])
def test_launch_from_chart_shows_patient_and_active_problems(stack: Stack, patient_id: str) -> None:
    resources = fixture_bundle(patient_id)
    with new_browser() as browser:
        page = open_chart(browser, stack, patient_id)
    assert page.status_code == 200, page.text
    # The callback (here its finishing post, as a cookie-less browser sends it) renders the page itself,
    # so no second request depends on a cookie.
    assert str(page.url) == f"{stack.app_url}/callback"
    assert expected_name(resources) in page.text
    problems = active_problem_texts(resources)
    assert problems, "fixture should have active problems"
    for text in problems:
        assert text in page.text


def test_page_names_the_user_signed_in_to_the_chart(stack: Stack) -> None:
    with new_browser() as browser:
        page = open_chart(browser, stack, "ccm-two-chronic", user="pr-nurse")
    org = json.loads((data_path("fixtures") / "organization.json").read_text())
    nurse = next(e["resource"] for e in org["entry"] if e["resource"]["id"] == "pr-nurse")
    assert nurse["name"][0]["family"] in page.text


def test_app_sends_pkce_s256_state_aud_and_typed_scopes(stack: Stack) -> None:
    with new_browser() as browser:
        chart = browser.get(stack.chart_url("ccm-two-chronic"))
        authorize_url, _, _ = launch_page(browser.get(iframe_src(chart.text), follow_redirects=False))
    query = parse_qs(urlparse(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["aud"] == [stack.fhir_base]
    assert query["state"][0]
    scopes = query["scope"][0].split()
    assert "patient/Condition.rs" in scopes and "launch" in scopes
    assert not any("*" in s for s in scopes), "no wildcard scopes"


def _authorize(browser: httpx.Client, stack: Stack) -> tuple[str, dict[str, list[str]], str]:
    """Run the launch up to the EHR's redirect back to the app: that callback URL, its query, the launch's nonce."""
    chart = browser.get(stack.chart_url("ccm-two-chronic"))
    authorize_url, _, nonce = launch_page(browser.get(iframe_src(chart.text), follow_redirects=False))
    back = browser.get(authorize_url, follow_redirects=False)
    assert back.status_code in (302, 303), back.text
    callback = back.headers["location"]
    assert callback.startswith(f"{stack.app_url}/callback")
    return callback, parse_qs(urlparse(callback).query), nonce


@pytest.mark.parametrize("verifier", [None, "wrong-verifier-wrong-verifier-wrong-verifier-0123"])
def test_ehr_refuses_code_without_the_right_pkce_verifier(stack: Stack, verifier: str | None) -> None:
    with new_browser() as browser:
        _, query, _ = _authorize(browser, stack)
    form = {"grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": stack.settings.redirect_uri, **client_auth(stack)}
    if verifier:
        form["code_verifier"] = verifier
    response = httpx.post(f"{stack.sandbox_url}/auth/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_replayed_callback_is_refused(stack: Stack) -> None:
    with new_browser() as browser:
        callback, _, nonce = _authorize(browser, stack)
        first = finish_launch(browser, stack.app_url, callback, nonce)
        assert first.status_code == 200
        replay = finish_launch(browser, stack.app_url, callback, nonce)
    assert replay.status_code == 400
    assert "already used" in replay.text
    assert "Relaunch the app" in replay.text


def test_callback_with_forged_state_is_refused(stack: Stack) -> None:
    with new_browser() as browser:
        _, query, nonce = _authorize(browser, stack)
        forged = finish_launch(browser, stack.app_url, f"/callback?code={query['code'][0]}&state=forged-state",
                               nonce)
    assert forged.status_code == 400
    assert "unknown, expired or was already used" in forged.text


def test_unknown_issuer_is_refused_with_instructions(stack: Stack) -> None:
    with new_browser() as browser:
        page = browser.get(f"{stack.app_url}/launch",
                           params={"iss": "https://ehr.elsewhere.example/fhir", "launch": "abc"})
    assert page.status_code == 400
    assert "not installed for the EHR at https://ehr.elsewhere.example/fhir" in page.text
    assert "docs/install.md" in page.text


@pytest.mark.parametrize("params", [{"launch": "abc"}, {"iss": "ISS"}])
def test_launch_missing_a_parameter_says_which(stack: Stack, params: dict[str, str]) -> None:
    params = {k: (stack.fhir_base if v == "ISS" else v) for k, v in params.items()}
    with new_browser() as browser:
        page = browser.get(f"{stack.app_url}/launch", params=params)
    assert page.status_code == 400
    missing = "iss" if "iss" not in params else "launch"
    assert f"no `{missing}`" in page.text
    assert "Open the app from a patient" in page.text


def test_access_denied_at_the_ehr_is_explained(stack: Stack) -> None:
    url = sandbox_launch_url(stack, patient="ccm-two-chronic", deny=True)
    with new_browser() as browser:
        page = follow_launch(browser, browser.get(url), stack.app_url)
    assert page.status_code == 400
    assert "Access was denied at the EHR" in page.text


def test_unreachable_ehr_gives_a_clear_error(stack: Stack) -> None:
    # A real fault: a port nothing listens on, so the connection is refused.
    dead = Organization(id="dead-ehr", name="Down EHR", issuer="http://127.0.0.1:9/fhir",
                        client_id="x")
    with one_transaction(stack.settings.database_url) as db:
        save_organizations(db, [dead])
    with new_browser() as browser:
        page = browser.get(f"{stack.app_url}/launch", params={"iss": dead.issuer, "launch": "x"})
    assert page.status_code == 502
    assert "could not be reached" in page.text
    assert "Traceback" not in page.text


def test_tokens_never_reach_the_browser_and_are_encrypted_at_rest(stack: Stack) -> None:
    seen: list[str] = []

    def record(response: httpx.Response) -> None:
        response.read()
        seen.extend([str(response.url), response.text, *response.headers.values()])

    with httpx.Client(follow_redirects=True, event_hooks={"response": [record]}) as browser:
        page = open_chart(browser, stack, "pcm-single-complex")
        assert page.status_code == 200
        cookie_values = [c.value for c in browser.cookies.jar]
    box = TokenBox(TEST_SECRET)
    session = max(stored_sessions(stack), key=lambda s: s.created_at)
    access = box.open(session.access_token_enc)
    secrets_ = [access] + ([box.open(session.refresh_token_enc)] if session.refresh_token_enc else [])
    for secret in secrets_:
        assert len(secret) >= 16
        assert not any(secret in item for item in seen + cookie_values)
        assert secret not in session.access_token_enc
    assert session.id_hash not in cookie_values, "the database key is a hash, not the handle"


def test_sandbox_refuses_reads_outside_the_launched_patient(stack: Stack) -> None:
    with new_browser() as browser:
        open_chart(browser, stack, "ccm-two-chronic")
    session = max(stored_sessions(stack), key=lambda s: s.created_at)
    token = TokenBox(TEST_SECRET).open(session.access_token_enc)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    own = httpx.get(f"{stack.fhir_base}/Patient/{session.patient_id}", headers=headers)
    assert own.status_code == 200
    other = httpx.get(f"{stack.fhir_base}/Patient/acute-only", headers=headers)
    assert other.status_code in (403, 404)
    assert other.json()["resourceType"] == "OperationOutcome"
    search = httpx.get(f"{stack.fhir_base}/Condition", params={"patient": "acute-only"}, headers=headers)
    assert search.status_code == 403 or search.json().get("total", 0) == 0


def test_revoked_token_asks_for_a_relaunch(stack: Stack) -> None:
    with new_browser() as browser:
        page = open_chart(browser, stack, "tcm-recent-discharge")
        session = max(stored_sessions(stack), key=lambda s: s.created_at)
        token = TokenBox(TEST_SECRET).open(session.access_token_enc)
        assert browser.get(f"{stack.app_url}/patient", headers=bearer(page.text)).status_code == 200
        httpx.post(f"{stack.sandbox_url}/_sandbox/revoke", json={"token": token}).raise_for_status()
        again = browser.get(f"{stack.app_url}/patient", headers=bearer(page.text))
    assert again.status_code == 401
    assert "Relaunch the app from the patient" in again.text


def test_patient_page_without_a_session_asks_for_a_launch(stack: Stack) -> None:
    with new_browser() as browser:
        page = browser.get(f"{stack.app_url}/patient")
    assert page.status_code == 401
    assert "Relaunch the app" in page.text
