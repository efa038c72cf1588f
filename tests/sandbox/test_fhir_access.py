"""Authorization of FHIR calls: bearer tokens, scopes, the patient compartment, open mode."""

from __future__ import annotations

import httpx

from tests.sandbox.helpers import bearer, login


def test_no_token_is_401_with_www_authenticate(http: httpx.Client) -> None:
    response = http.get("/fhir/Patient/alpha")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["code"] == "login"


def test_scope_is_required_for_the_type(http: httpx.Client, base: str) -> None:
    token = login(http, base, scope="launch patient/Patient.rs")
    assert http.get("/fhir/Patient/alpha", headers=bearer(token)).status_code == 200
    response = http.get("/fhir/Condition?patient=alpha", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"
    assert http.get("/fhir/Condition/alpha-hf", headers=bearer(token)).status_code == 403


def test_scope_letters_are_enforced(http: httpx.Client, base: str) -> None:
    read_only = login(http, base, scope="launch patient/Condition.r")
    assert http.get("/fhir/Condition/alpha-hf", headers=bearer(read_only)).status_code == 200
    assert http.get("/fhir/Condition", headers=bearer(read_only)).status_code == 403
    body = {"resourceType": "Condition", "subject": {"reference": "Patient/alpha"}}
    assert http.post("/fhir/Condition", json=body,
                     headers=bearer(read_only)).status_code == 403


def test_v1_scopes(http: httpx.Client, base: str) -> None:
    token = login(http, base, scope="launch patient/Condition.read patient/Observation.write")
    assert http.get("/fhir/Condition?patient=alpha", headers=bearer(token)).status_code == 200
    created = http.post("/fhir/Observation", headers=bearer(token), json={
        "resourceType": "Observation", "status": "final",
        "subject": {"reference": "Patient/alpha"}, "code": {"text": "v1 write"}})
    assert created.status_code == 201
    assert http.get("/fhir/Observation", headers=bearer(token)).status_code == 403


def test_other_patients_resources_are_hidden(http: httpx.Client, base: str) -> None:
    token = login(http, base, scope="launch patient/*.rs patient/Condition.c")
    assert http.get("/fhir/Condition/beta-copd", headers=bearer(token)).status_code in (403, 404)
    assert http.get("/fhir/Patient/beta", headers=bearer(token)).status_code in (403, 404)
    everything = http.get("/fhir/Condition", headers=bearer(token)).json()
    assert everything["total"] >= 3
    assert {e["resource"]["subject"]["reference"] for e in everything["entry"]} == {
        "Patient/alpha"}
    assert http.get("/fhir/Condition?patient=beta", headers=bearer(token)).status_code == 403
    patients = http.get("/fhir/Patient", headers=bearer(token)).json()
    assert [e["resource"]["id"] for e in patients["entry"]] == ["alpha"]
    write = http.post("/fhir/Condition", headers=bearer(token), json={
        "resourceType": "Condition", "subject": {"reference": "Patient/beta"}})
    assert write.status_code == 403


def test_shared_types_are_readable_with_patient_scopes(http: httpx.Client, base: str) -> None:
    token = login(http, base, scope="launch patient/Practitioner.rs")
    assert http.get("/fhir/Practitioner/pract-nurse", headers=bearer(token)).status_code == 200
    assert http.get("/fhir/Practitioner", headers=bearer(token)).json()["total"] == 3


def test_user_scopes_reach_any_patient(http: httpx.Client, base: str) -> None:
    token = login(http, base, scope="launch user/Condition.rs")
    assert http.get("/fhir/Condition/beta-copd", headers=bearer(token)).status_code == 200
    assert http.get("/fhir/Condition?patient=beta", headers=bearer(token)).json()["total"] == 1


def test_granular_scope_filters(http: httpx.Client, base: str) -> None:
    scope = ("launch patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
             "observation-category|survey")
    token = login(http, base, scope=scope)
    found = http.get("/fhir/Observation", headers=bearer(token)).json()
    assert {e["resource"]["id"] for e in found["entry"]} == {"alpha-phq9-nov", "alpha-phq9-sep"}
    assert http.get("/fhir/Observation/alpha-bp", headers=bearer(token)).status_code == 403


def test_open_mode_needs_no_token(tmp_path, keys, jwks_url) -> None:
    from smart_app.sandbox import SandboxConfig, create_app
    from tests.live_server import serve
    from tests.sandbox.conftest import FIXTURES

    with serve(lambda b: create_app(SandboxConfig(base_url=b, fixtures_dir=FIXTURES,
                                                  open=True))) as base:
        with httpx.Client(base_url=base) as http:
            assert http.get("/fhir/Condition/beta-copd").status_code == 200
            assert http.get("/fhir/Condition").json()["total"] == 4
            created = http.post("/fhir/Basic", json={"resourceType": "Basic"})
            assert created.status_code == 201
