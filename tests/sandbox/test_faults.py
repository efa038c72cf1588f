"""Fault injection seen by a real HTTP client: errors, timeouts, drops, and after-commit failures."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from smart_app.sandbox.faults import MAX_DELAY_S
from tests.sandbox.conftest import sandbox_server

SYSTEM = "urn:test:claim"


@pytest.fixture(scope="module")
def fault_base(keys, jwks_url) -> Iterator[str]:
    with sandbox_server(keys, jwks_url, open=True) as url:
        yield url


@pytest.fixture
def client(fault_base: str) -> Iterator[httpx.Client]:
    """A client on a sandbox with no armed faults and an empty request log."""
    with httpx.Client(base_url=fault_base, timeout=10) as http:
        http.delete("/_sandbox/faults")
        http.delete("/_sandbox/requests")
        yield http
        http.delete("/_sandbox/faults")


def arm(client: httpx.Client, match: str, kind: str, count: int = 1, **extra: object) -> dict:
    response = client.post("/_sandbox/faults",
                           json={"match": match, "kind": kind, "count": count, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def claim(identifier: str) -> dict:
    return {"resourceType": "Claim", "status": "active", "use": "claim",
            "patient": {"reference": "Patient/alpha"},
            "identifier": [{"system": SYSTEM, "value": identifier}]}


def new_identifier() -> str:
    return f"claim-{uuid.uuid4().hex[:8]}"


def stored(client: httpx.Client, identifier: str) -> int:
    response = client.get("/_sandbox/resources/Claim", params={"identifier": f"{SYSTEM}|{identifier}"})
    assert response.status_code == 200
    return response.json()["total"]


def log_entry(client: httpx.Client, method: str, path: str, wait_s: float = 0) -> dict:
    """The last log entry for `method path`, waiting up to `wait_s` for it to be written."""
    deadline = time.monotonic() + wait_s
    while True:
        found = [e for e in client.get("/_sandbox/requests").json()
                 if (e["method"], e["path"]) == (method, path)]
        if found or time.monotonic() >= deadline:
            assert found, f"{method} {path} is not in the request log"
            return found[-1]
        time.sleep(0.05)


def assert_outcome(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"].startswith("injected fault")


def test_arm_list_and_clear(client: httpx.Client) -> None:
    first = arm(client, "POST /fhir/Claim", "500", 2)
    assert first["remaining"] == 2 and first["kind"] == "500" and first["delay_s"] == 5
    arm(client, "POST /fhir", "timeout", delay_s=0.5)
    listed = client.get("/_sandbox/faults").json()
    assert [(f["match"], f["kind"], f["remaining"]) for f in listed] == [
        ("POST /fhir/Claim", "500", 2), ("POST /fhir", "timeout", 1)]
    assert client.delete("/_sandbox/faults").status_code == 204
    assert client.get("/_sandbox/faults").json() == []
    identifier = new_identifier()
    assert client.post("/fhir/Claim", json=claim(identifier)).status_code == 201


@pytest.mark.parametrize("body", [
    {"match": "POST /fhir", "kind": "explode"},
    {"match": "", "kind": "500"},
    {"match": "POST /fhir", "kind": "500", "count": 0},
    {"match": "POST /fhir", "kind": "timeout", "delay_s": -1},
    {"match": "POST /fhir", "kind": "500", "colour": "red"},
    ["POST /fhir", "500"],
])
def test_bad_faults_are_rejected(client: httpx.Client, body: object) -> None:
    response = client.post("/_sandbox/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert client.get("/_sandbox/faults").json() == []


def test_500_does_nothing_and_counts_down(client: httpx.Client) -> None:
    arm(client, "POST /fhir/Claim", "500", count=2)
    identifier = new_identifier()
    assert_outcome(client.post("/fhir/Claim", json=claim(identifier)), 500)
    assert [f["remaining"] for f in client.get("/_sandbox/faults").json()] == [1]
    assert_outcome(client.post("/fhir/Claim", json=claim(identifier)), 500)
    assert client.get("/_sandbox/faults").json() == []
    assert stored(client, identifier) == 0
    assert client.post("/fhir/Claim", json=claim(identifier)).status_code == 201
    assert stored(client, identifier) == 1
    statuses = [(e["status"], e["fault"]) for e in client.get("/_sandbox/requests").json()
                if e["path"] == "/fhir/Claim"]
    assert statuses == [(500, "500"), (500, "500"), (201, None)]


def test_match_is_a_method_and_path_prefix(client: httpx.Client) -> None:
    arm(client, "POST /fhir", "500", count=2)
    assert client.get("/fhir/Patient/alpha").status_code == 200  # not a POST
    assert_outcome(client.post("/fhir/Observation", json={"resourceType": "Observation"}), 500)
    arm(client, "GET /fhir/Patient", "503")
    assert_outcome(client.get("/fhir/Patient", params={"_id": "alpha"}), 503)  # query ignored
    assert [(f["match"], f["remaining"]) for f in client.get("/_sandbox/faults").json()] == [
        ("POST /fhir", 1)]


def test_sandbox_hooks_are_never_faulted(client: httpx.Client) -> None:
    arm(client, "GET /", "500", count=3)
    assert client.get("/_sandbox/faults").status_code == 200
    assert client.get("/_sandbox/requests").status_code == 200
    assert [f["remaining"] for f in client.get("/_sandbox/faults").json()] == [3]
    assert_outcome(client.get("/fhir/metadata"), 500)


def test_503_has_retry_after(client: httpx.Client) -> None:
    arm(client, "POST /fhir/Claim", "503")
    identifier = new_identifier()
    response = client.post("/fhir/Claim", json=claim(identifier))
    assert_outcome(response, 503)
    assert response.headers["retry-after"] == "1"
    assert stored(client, identifier) == 0
    assert log_entry(client, "POST", "/fhir/Claim")["fault"] == "503"


def test_timeout_outlasts_the_client(client: httpx.Client, fault_base: str) -> None:
    # The longest delay a fault takes: the request is answered only when the client hangs up, or after it.
    arm(client, "POST /fhir/Claim", "timeout", delay_s=MAX_DELAY_S)
    identifier = new_identifier()
    with httpx.Client(base_url=fault_base, timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.post("/fhir/Claim", json=claim(identifier))
    # The sandbox stops waiting when the client hangs up, so the request reaches the log (the event waited
    # for) long before the fault's delay could have run out.
    entry = log_entry(client, "POST", "/fhir/Claim", wait_s=MAX_DELAY_S / 5)
    assert (entry["status"], entry["fault"]) == (504, "timeout")
    assert stored(client, identifier) == 0


def test_timeout_answers_504_after_the_delay(client: httpx.Client) -> None:
    arm(client, "GET /fhir/Patient/alpha", "timeout", delay_s=0.2)
    started = time.monotonic()
    response = client.get("/fhir/Patient/alpha")
    assert time.monotonic() - started >= 0.2
    assert_outcome(response, 504)


def test_drop_closes_the_connection_without_a_response(client: httpx.Client) -> None:
    arm(client, "POST /fhir/Claim", "drop")
    identifier = new_identifier()
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/fhir/Claim", json=claim(identifier))
    assert stored(client, identifier) == 0
    entry = log_entry(client, "POST", "/fhir/Claim")
    assert (entry["status"], entry["fault"]) == (0, "drop")
    assert "committed_status" not in entry
    # The same client carries on over a new connection.
    assert client.post("/fhir/Claim", json=claim(identifier)).status_code == 201


def test_500_after_commit_writes_then_fails(client: httpx.Client) -> None:
    arm(client, "POST /fhir/Claim", "500-after-commit")
    identifier = new_identifier()
    assert_outcome(client.post("/fhir/Claim", json=claim(identifier)), 500)
    assert stored(client, identifier) == 1
    entry = log_entry(client, "POST", "/fhir/Claim")
    assert (entry["status"], entry["fault"], entry["committed_status"]) == (
        500, "500-after-commit", 201)


def test_drop_after_commit_writes_then_drops(client: httpx.Client) -> None:
    arm(client, "POST /fhir", "drop-after-commit")
    identifier = new_identifier()
    with pytest.raises(httpx.TransportError):
        client.post("/fhir/Claim", json=claim(identifier))
    assert stored(client, identifier) == 1
    entry = log_entry(client, "POST", "/fhir/Claim")
    assert (entry["status"], entry["fault"], entry["committed_status"]) == (
        0, "drop-after-commit", 201)


def test_after_commit_applies_to_transactions(client: httpx.Client) -> None:
    arm(client, "POST /fhir", "500-after-commit")
    identifier = new_identifier()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": claim(identifier), "request": {"method": "POST", "url": "Claim"}}]}
    assert_outcome(client.post("/fhir", json=bundle), 500)
    assert stored(client, identifier) == 1


def test_faults_are_shared_across_connections(client: httpx.Client, fault_base: str) -> None:
    arm(client, "GET /fhir/Patient/alpha", "500", count=2)
    for _ in range(2):
        with httpx.Client(base_url=fault_base) as other:
            assert_outcome(other.get("/fhir/Patient/alpha"), 500)
    assert client.get("/fhir/Patient/alpha").status_code == 200


def test_resource_counts_by_identifier(client: httpx.Client) -> None:
    identifier = new_identifier()
    created = [client.post("/fhir/Claim", json=claim(identifier)).json()["id"] for _ in range(2)]
    response = client.get("/_sandbox/resources/Claim",
                          params={"identifier": f"{SYSTEM}|{identifier}"})
    assert response.json() == {"resourceType": "Claim", "total": 2, "ids": created}
    assert client.get("/_sandbox/resources/not-a-type").status_code == 404
    assert client.get("/_sandbox/resources/Claim", params={"date": "bogus"}).status_code == 400
