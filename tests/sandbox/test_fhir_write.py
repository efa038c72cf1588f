"""Create, conditional create, update, delete, batch and transaction Bundles, and errors."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.sandbox.helpers import bearer, login

WRITE_SCOPE = "launch user/*.cruds"


@pytest.fixture(scope="module")
def auth(base: str) -> dict[str, str]:
    with httpx.Client(base_url=base) as http:
        return bearer(login(http, base, scope=WRITE_SCOPE))


def task(identifier: str, patient: str = "alpha") -> dict:
    return {"resourceType": "Task", "status": "completed", "intent": "order",
            "for": {"reference": f"Patient/{patient}"},
            "identifier": [{"system": "urn:test:task", "value": identifier}]}


def count(http: httpx.Client, auth: dict, url: str) -> int:
    return http.get(url, headers=auth).json()["total"]


def test_create_assigns_id_and_meta(http: httpx.Client, base: str, auth: dict) -> None:
    response = http.post("/fhir/Task", json={**task("create-1"), "id": "ignored"}, headers=auth)
    assert response.status_code == 201
    created = response.json()
    assert created["id"] != "ignored"
    assert created["meta"]["versionId"] == "1"
    assert created["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["location"] == f"{base}/fhir/Task/{created['id']}/_history/1"
    assert response.headers["etag"] == 'W/"1"'
    assert http.get(f"/fhir/Task/{created['id']}", headers=auth).json() == created


def test_any_resource_type_is_stored(http: httpx.Client, auth: dict) -> None:
    created = http.post("/fhir/Claim", headers=auth, json={
        "resourceType": "Claim", "status": "active", "patient": {"reference": "Patient/beta"}})
    assert created.status_code == 201
    found = http.get("/fhir/Claim?patient=beta", headers=auth).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [created.json()["id"]]


def test_conditional_create_twice_makes_one(http: httpx.Client, auth: dict) -> None:
    headers = {**auth, "If-None-Exist": "identifier=urn:test:task|cond-1"}
    first = http.post("/fhir/Task", json=task("cond-1"), headers=headers)
    second = http.post("/fhir/Task", json=task("cond-1"), headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert count(http, auth, "/fhir/Task?identifier=urn:test:task|cond-1") == 1


def test_conditional_create_with_several_matches_is_412(http: httpx.Client, auth: dict) -> None:
    for _ in range(2):
        http.post("/fhir/Task", json=task("dup-1"), headers=auth)
    response = http.post("/fhir/Task", json=task("dup-1"),
                         headers={**auth, "If-None-Exist": "identifier=urn:test:task|dup-1"})
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"


def test_update_and_update_as_create(http: httpx.Client, auth: dict) -> None:
    rid = f"t-{uuid.uuid4().hex[:8]}"
    created = http.put(f"/fhir/Task/{rid}", json={**task("put-1"), "id": rid}, headers=auth)
    assert created.status_code == 201
    changed = http.put(f"/fhir/Task/{rid}", json={**task("put-1"), "id": rid,
                                                   "status": "cancelled"}, headers=auth)
    assert changed.status_code == 200
    assert changed.json()["meta"]["versionId"] == "2"
    stale = http.put(f"/fhir/Task/{rid}", json={**task("put-1"), "id": rid},
                     headers={**auth, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    mismatch = http.put(f"/fhir/Task/{rid}", json={**task("put-1"), "id": "other"}, headers=auth)
    assert mismatch.status_code == 400
    assert http.delete(f"/fhir/Task/{rid}", headers=auth).status_code == 204
    assert http.get(f"/fhir/Task/{rid}", headers=auth).status_code == 404


def test_errors_are_operation_outcomes(http: httpx.Client, auth: dict) -> None:
    cases = [
        (http.get("/fhir/Condition/nope", headers=auth), 404),
        (http.post("/fhir/Task", content=b"{not json", headers={
            **auth, "Content-Type": "application/fhir+json"}), 400),
        (http.post("/fhir/Task", json={"resourceType": "Patient"}, headers=auth), 400),
        (http.patch("/fhir/Task/x", json={}, headers=auth), 405),
        (http.post("/fhir/Task", json={**task("x"), "for": {"reference": "Patient/ghost"}},
                   headers=auth), 422),
        (http.get("/fhir/not-a-type", headers=auth), 404),
        (http.post("/fhir/Task", content=b"<Task/>", headers={
            **auth, "Content-Type": "application/fhir+xml"}), 415),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.text)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        issue = outcome["issue"][0]
        assert issue["severity"] == "error" and issue["code"] and issue["diagnostics"]
        assert response.headers["content-type"].startswith("application/fhir+json")


def test_transaction_rewrites_urn_uuid_references(http: httpx.Client, auth: dict) -> None:
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    mrn = f"MRN-{uuid.uuid4().hex[:6]}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}",
         "resource": {"resourceType": "Condition", "subject": {"reference": patient_url},
                      "code": {"text": "made in a transaction"}},
         "request": {"method": "POST", "url": "Condition"}},
        {"fullUrl": patient_url,
         "resource": {"resourceType": "Patient",
                      "identifier": [{"system": "urn:sandbox:mrn", "value": mrn}]},
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": f"identifier=urn:sandbox:mrn|{mrn}"}},
    ]}
    response = http.post("/fhir", json=bundle, headers=auth)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    condition_entry, patient_entry = result["entry"]
    assert condition_entry["response"]["status"].startswith("201")
    patient_id = patient_entry["resource"]["id"]
    assert condition_entry["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    assert patient_entry["response"]["location"].startswith(f"Patient/{patient_id}/_history/")
    # The same transaction again: the patient matches ifNoneExist and is not duplicated.
    again = http.post("/fhir", json=bundle, headers=auth).json()
    assert again["entry"][1]["response"]["status"].startswith("200")
    assert again["entry"][1]["resource"]["id"] == patient_id
    assert count(http, auth, f"/fhir/Patient?identifier=urn:sandbox:mrn|{mrn}") == 1
    assert count(http, auth, f"/fhir/Condition?patient={patient_id}") == 2


def test_failing_transaction_creates_nothing(http: httpx.Client, auth: dict) -> None:
    before = count(http, auth, "/fhir/Task?identifier=urn:test:task|tx-fail")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": task("tx-fail"), "request": {"method": "POST", "url": "Task"}},
        {"resource": task("tx-fail", patient="ghost"), "request": {"method": "POST",
                                                                   "url": "Task"}},
    ]}
    response = http.post("/fhir", json=bundle, headers=auth)
    assert response.status_code == 422
    assert "entry 1" in response.json()["issue"][0]["diagnostics"]
    assert count(http, auth, "/fhir/Task?identifier=urn:test:task|tx-fail") == before == 0


def test_transaction_forbidden_entry_rolls_back(http: httpx.Client, base: str) -> None:
    token = bearer(login(http, base, scope="launch patient/Task.crus"))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": task("tx-forbid"), "request": {"method": "POST", "url": "Task"}},
        {"resource": task("tx-forbid", patient="beta"), "request": {"method": "POST",
                                                                    "url": "Task"}},
    ]}
    assert http.post("/fhir", json=bundle, headers=token).status_code == 403
    assert count(http, token, "/fhir/Task?identifier=urn:test:task|tx-forbid") == 0


def test_batch_entries_succeed_or_fail_on_their_own(http: httpx.Client, auth: dict) -> None:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": task("batch-1"), "request": {"method": "POST", "url": "Task"}},
        {"request": {"method": "GET", "url": "Condition/does-not-exist"}},
        {"request": {"method": "GET", "url": "Condition?patient=beta"}},
        {"resource": task("batch-2", patient="ghost"), "request": {"method": "POST",
                                                                   "url": "Task"}},
        {"request": {"method": "GET", "url": "Patient/alpha"}},
        {"request": {"method": "FETCH", "url": "Patient"}},
    ]}
    response = http.post("/fhir", json=bundle, headers=auth)
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in result["entry"]]
    assert statuses == ["201", "404", "200", "422", "200", "400"]
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert result["entry"][2]["resource"]["total"] == 1
    assert result["entry"][4]["resource"]["id"] == "alpha"
    assert count(http, auth, "/fhir/Task?identifier=urn:test:task|batch-1") == 1


def test_bundle_must_be_batch_or_transaction(http: httpx.Client, auth: dict) -> None:
    response = http.post("/fhir", json={"resourceType": "Bundle", "type": "collection"},
                         headers=auth)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_duplicate_targets_in_a_transaction_conflict(http: httpx.Client, auth: dict) -> None:
    entry = {"resource": {**task("dup-put"), "id": "dup-put"},
             "request": {"method": "PUT", "url": "Task/dup-put"}}
    response = http.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                        "entry": [entry, entry]}, headers=auth)
    assert response.status_code == 409
