"""EHR profiles: each publishes its CapabilityStatement and refuses what it does not offer."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smart_app.sandbox import SandboxConfig
from smart_app.sandbox.profiles import APP_TYPES, PROFILES
from tests.sandbox.conftest import FIXTURES, sandbox_server
from tests.sandbox.helpers import bearer, login

WRITE_SCOPE = "launch user/*.cruds"
EXISTING_TASK = "task-existing"


@pytest.fixture(scope="module")
def fixtures_with_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test fixtures plus one Task, so Task update can be tried where create is refused."""
    folder = tmp_path_factory.mktemp("profile-fixtures")
    for path in FIXTURES.glob("*.json"):
        shutil.copy(path, folder / path.name)
    (folder / "task.json").write_text(json.dumps({
        "resourceType": "Task", "id": EXISTING_TASK, "status": "requested", "intent": "order",
        "for": {"reference": "Patient/alpha"}}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def servers(keys, jwks_url, fixtures_with_task: Path) -> Iterator[dict[str, str]]:
    """One sandbox per profile; epic-like requires tokens, the others serve FHIR openly."""
    assert set(PROFILES) == {"open", "strict", "epic-like", "oracle-like"}, "a new profile needs its server here"
    with (sandbox_server(keys, jwks_url, open=True, fixtures_dir=fixtures_with_task) as open_,
          sandbox_server(keys, jwks_url, profile="epic-like",
                         fixtures_dir=fixtures_with_task) as epic,
          sandbox_server(keys, jwks_url, open=True, profile="oracle-like",
                         fixtures_dir=fixtures_with_task) as oracle,
          sandbox_server(keys, jwks_url, open=True, profile="strict",
                         fixtures_dir=fixtures_with_task) as strict):
        yield {"open": open_, "epic-like": epic, "oracle-like": oracle, "strict": strict}


@pytest.fixture(scope="module")
def clients(servers: dict[str, str]) -> Iterator[dict[str, httpx.Client]]:
    """An HTTP client per profile; the epic-like one carries a user/*.cruds access token."""
    made = {name: httpx.Client(base_url=url, timeout=10) for name, url in servers.items()}
    epic = made["epic-like"]
    epic.headers.update(bearer(login(epic, servers["epic-like"], scope=WRITE_SCOPE)))
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


def capabilities(client: httpx.Client) -> tuple[dict, dict[str, dict]]:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    rest = response.json()["rest"][0]
    return rest, {r["type"]: r for r in rest["resource"]}


def codes(entry: dict) -> set[str]:
    return {i["code"] for i in entry["interaction"]}


def observation(category: str | None, identifier: str | None = None) -> dict:
    resource: dict = {"resourceType": "Observation", "status": "final",
                      "code": {"text": "a measurement"},
                      "subject": {"reference": "Patient/alpha"}}
    if category:
        resource["category"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": category}]}]
    if identifier:
        resource["identifier"] = [{"system": "urn:test:obs", "value": identifier}]
    return resource


def counted(client: httpx.Client, rtype: str, identifier: str) -> int:
    response = client.get(f"/_sandbox/resources/{rtype}", params={"identifier": identifier})
    assert response.status_code == 200
    return response.json()["total"]


def assert_outcome(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert text in outcome["issue"][0]["diagnostics"]


def test_every_profile_serves_every_app_type_for_read_and_search(clients) -> None:
    for name, client in clients.items():
        _, types = capabilities(client)
        for rtype in APP_TYPES:
            if name == "oracle-like" and rtype == "PractitionerRole":
                continue  # Oracle Health has no PractitionerRole: tested below
            assert {"read", "search-type"} <= codes(types[rtype]), (name, rtype)


def test_oracle_like_has_no_practitioner_role_but_serves_persons(clients) -> None:
    client = clients["oracle-like"]
    _, types = capabilities(client)
    assert "PractitionerRole" not in types
    assert {"read", "search-type"} <= codes(types["Person"])
    refused = client.get("/fhir/PractitionerRole", params={"practitioner": "Practitioner/pr-nurse"})
    assert refused.status_code == 404
    assert "PractitionerRole is not supported" in refused.json()["issue"][0]["diagnostics"]


def test_open_capability_statement_offers_everything(clients) -> None:
    rest, types = capabilities(clients["open"])
    assert {i["code"] for i in rest["interaction"]} == {"batch", "transaction"}
    for rtype in APP_TYPES:
        assert codes(types[rtype]) == {"read", "search-type", "create", "update", "delete"}
        assert types[rtype]["conditionalCreate"] is True
        assert types[rtype]["updateCreate"] is True


EPIC_EXPECTED = {
    "Claim": {"read", "search-type"},
    "Consent": {"read", "search-type"},
    "Task": {"read", "search-type", "update"},
    "Observation": {"read", "search-type", "create", "update"},
    "DocumentReference": {"read", "search-type", "create", "update"},
    "Communication": {"read", "search-type", "create"},
    "ChargeItem": {"read", "search-type"},
    "Patient": {"read", "search-type"},
    "QuestionnaireResponse": {"read", "search-type", "create"},
}
ORACLE_EXPECTED = {
    "Claim": {"read", "search-type"},
    "Consent": {"read", "search-type"},
    "Task": {"read", "search-type", "update"},
    "Observation": {"read", "search-type", "create", "update"},
    "DocumentReference": {"read", "search-type", "create", "update"},
    "Communication": {"read", "search-type", "create"},
    "ChargeItem": {"read", "search-type", "create"},
    "QuestionnaireResponse": {"read", "search-type"},
}


@pytest.mark.parametrize("profile, expected", [("epic-like", EPIC_EXPECTED),
                                               ("oracle-like", ORACLE_EXPECTED)])
def test_restricted_capability_statements(clients, profile: str, expected: dict) -> None:
    rest, types = capabilities(clients[profile])
    assert "interaction" not in rest  # neither batch nor transaction
    for rtype, interactions in expected.items():
        assert codes(types[rtype]) == interactions, rtype
    for entry in types.values():
        assert entry["conditionalCreate"] is False
        assert entry["updateCreate"] is False
        assert "delete" not in codes(entry)
    assert ("documentation" in types["Observation"]) == (profile == "oracle-like")
    assert set(types) == set(PROFILES[profile].resources)


@pytest.mark.parametrize("profile, method, path, body, message", [
    ("epic-like", "POST", "/fhir/Claim", {"resourceType": "Claim", "status": "active"},
     "Claim create is not supported by this server"),
    ("epic-like", "POST", "/fhir/Task", {"resourceType": "Task", "status": "requested",
                                         "intent": "order"},
     "Task create is not supported by this server"),
    ("epic-like", "POST", "/fhir/Consent", {"resourceType": "Consent", "status": "active"},
     "Consent create is not supported by this server"),
    ("epic-like", "POST", "/fhir/ChargeItem", {"resourceType": "ChargeItem"},
     "ChargeItem create is not supported by this server"),
    ("epic-like", "PUT", "/fhir/Consent/alpha-consent",
     {"resourceType": "Consent", "id": "alpha-consent", "status": "inactive"},
     "Consent update is not supported by this server"),
    ("epic-like", "PUT", "/fhir/Task/brand-new",
     {"resourceType": "Task", "id": "brand-new", "status": "requested", "intent": "order"},
     "Task create by update"),
    ("epic-like", "DELETE", "/fhir/Condition/alpha-flu", None,
     "Condition delete is not supported by this server"),
    ("oracle-like", "POST", "/fhir/Claim", {"resourceType": "Claim", "status": "active"},
     "Claim create is not supported by this server"),
    ("oracle-like", "POST", "/fhir/Task", {"resourceType": "Task", "status": "requested",
                                           "intent": "order"},
     "Task create is not supported by this server"),
    ("oracle-like", "POST", "/fhir/Consent", {"resourceType": "Consent", "status": "active"},
     "Consent create is not supported by this server"),
    ("oracle-like", "PUT", "/fhir/Claim/new-claim",
     {"resourceType": "Claim", "id": "new-claim", "status": "active"},
     "Claim update is not supported by this server"),
])
def test_refused_interactions_answer_405(clients, profile, method, path, body,
                                         message) -> None:
    response = clients[profile].request(method, path, json=body)
    assert_outcome(response, 405, message)
    assert response.json()["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize("profile", ["epic-like", "oracle-like"])
def test_unserved_type_is_404(clients, profile: str) -> None:
    assert_outcome(clients[profile].get("/fhir/Basic?patient=alpha"), 404,
                   "Basic is not supported")


@pytest.mark.parametrize("profile", ["epic-like", "oracle-like"])
def test_offered_interactions_work(clients, profile: str) -> None:
    client = clients[profile]
    assert client.get("/fhir/Claim?patient=alpha").status_code == 200
    assert client.get("/fhir/Consent/alpha-consent").status_code == 200
    task = client.get(f"/fhir/Task/{EXISTING_TASK}").json()
    updated = client.put(f"/fhir/Task/{EXISTING_TASK}", json={**task, "status": "completed"})
    assert updated.status_code == 200, updated.text
    for rtype, extra in (("DocumentReference", {"status": "current"}),
                         ("Communication", {"status": "completed"})):
        created = client.post(f"/fhir/{rtype}", json={
            "resourceType": rtype, "subject": {"reference": "Patient/alpha"}, **extra})
        assert created.status_code == 201, created.text
    observed = client.post("/fhir/Observation", json=observation("vital-signs"))
    assert observed.status_code == 201, observed.text


def test_oracle_like_charge_item_create(clients) -> None:
    created = clients["oracle-like"].post("/fhir/ChargeItem", json={
        "resourceType": "ChargeItem", "status": "billable",
        "code": {"text": "99490"}, "subject": {"reference": "Patient/alpha"}})
    assert created.status_code == 201, created.text


@pytest.mark.parametrize("profile", ["epic-like", "oracle-like"])
@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_bundles_refused(clients, profile: str, kind: str) -> None:
    identifier = f"bundle-{uuid.uuid4().hex[:8]}"
    bundle = {"resourceType": "Bundle", "type": kind, "entry": [
        {"resource": observation("vital-signs", identifier),
         "request": {"method": "POST", "url": "Observation"}}]}
    assert_outcome(clients[profile].post("/fhir", json=bundle), 405,
                   f"{kind} Bundles are not supported by this server")
    assert counted(clients[profile], "Observation", f"urn:test:obs|{identifier}") == 0


@pytest.mark.parametrize("profile", ["epic-like", "oracle-like"])
def test_if_none_exist_is_ignored_without_conditional_create(clients, profile: str) -> None:
    client = clients[profile]
    identifier = f"cond-{uuid.uuid4().hex[:8]}"
    headers = {"If-None-Exist": f"identifier=urn:test:obs|{identifier}"}
    first = client.post("/fhir/Observation", json=observation("vital-signs", identifier),
                        headers=headers)
    second = client.post("/fhir/Observation", json=observation("vital-signs", identifier),
                         headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert counted(client, "Observation", f"urn:test:obs|{identifier}") == 2


def test_if_none_exist_is_honoured_on_open(clients) -> None:
    client = clients["open"]
    identifier = f"cond-{uuid.uuid4().hex[:8]}"
    headers = {"If-None-Exist": f"identifier=urn:test:obs|{identifier}"}
    for _ in range(2):
        client.post("/fhir/Claim", headers=headers, json={
            "resourceType": "Claim", "status": "active", "patient": {"reference": "Patient/alpha"},
            "identifier": [{"system": "urn:test:obs", "value": identifier}]})
    assert counted(client, "Claim", f"urn:test:obs|{identifier}") == 1
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation("survey", identifier),
         "request": {"method": "POST", "url": "Observation",
                     "ifNoneExist": f"identifier=urn:test:obs|{identifier}"}}]}
    for _ in range(2):
        assert client.post("/fhir", json=transaction).status_code == 200
    assert counted(client, "Observation", f"urn:test:obs|{identifier}") == 1


@pytest.mark.parametrize("category, status", [
    ("vital-signs", 201), ("laboratory", 201), ("survey", 422), (None, 422)])
def test_oracle_like_observation_categories(clients, category: str | None,
                                            status: int) -> None:
    identifier = f"cat-{uuid.uuid4().hex[:8]}"
    response = clients["oracle-like"].post("/fhir/Observation",
                                           json=observation(category, identifier))
    if status == 201:
        assert response.status_code == 201, response.text
    else:
        assert_outcome(response, 422, "only supported for categories laboratory, vital-signs")
    assert counted(clients["oracle-like"], "Observation",
                   f"urn:test:obs|{identifier}") == (status == 201)


def test_epic_like_creates_survey_observations(clients) -> None:
    assert clients["epic-like"].post("/fhir/Observation",
                                     json=observation("survey")).status_code == 201


def test_epic_like_refusal_needs_a_token_first(servers) -> None:
    with httpx.Client(base_url=servers["epic-like"]) as anonymous:
        response = anonymous.post("/fhir/Claim", json={"resourceType": "Claim"})
    assert response.status_code == 401


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(ValueError, match="epic-like"):
        SandboxConfig(base_url="http://127.0.0.1:9", fixtures_dir=FIXTURES, profile="cerner")


def test_profile_command_line_option(monkeypatch: pytest.MonkeyPatch) -> None:
    from smart_app.sandbox import __main__ as entry

    seen: list[SandboxConfig] = []
    monkeypatch.setattr(entry, "create_app", lambda config: seen.append(config))
    monkeypatch.setattr(entry.uvicorn, "run", lambda *args, **kwargs: None)
    entry.main(["--profile", "oracle-like", "--fixtures", str(FIXTURES)])
    assert seen[0].profile == "oracle-like"
    assert seen[0].ehr_profile is PROFILES["oracle-like"]


# --- strict: reference search values must name their type ------------------------------------

REFERENCE_SEARCHES = [("Condition", "patient", {"alpha-diabetes", "alpha-hf", "alpha-flu"}),
                      ("Condition", "subject", {"alpha-diabetes", "alpha-hf", "alpha-flu"}),
                      ("Consent", "patient", {"alpha-consent"}),
                      ("Coverage", "patient", {"alpha-coverage"}),
                      ("Coverage", "beneficiary", {"alpha-coverage"})]


def found_ids(client: httpx.Client, rtype: str, params: dict[str, str]) -> set[str]:
    response = client.get(f"/fhir/{rtype}", params=params)
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry") or []}


@pytest.mark.parametrize(("rtype", "param", "expected"), REFERENCE_SEARCHES)
def test_strict_matches_a_reference_only_with_its_type(clients, rtype: str, param: str, expected: set[str]) -> None:
    strict = clients["strict"]
    assert found_ids(strict, rtype, {param: "Patient/alpha"}) == expected
    assert found_ids(strict, rtype, {param: "alpha"}) == set(), "a bare id matches nothing, as on Medplum"
    # A list may mix the two: only the typed value counts.
    assert found_ids(strict, rtype, {param: "alpha,Patient/nobody"}) == set()
    assert found_ids(strict, rtype, {param: "nobody,Patient/alpha"}) == expected
    # The open profile (like HAPI) still takes a bare id, which is why it could not show the bug.
    assert found_ids(clients["open"], rtype, {param: "alpha"}) == expected


def test_strict_applies_inside_a_batch_too(clients) -> None:
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Coverage?beneficiary=alpha"}},
        {"request": {"method": "GET", "url": "Coverage?patient=Patient%2Falpha"}}]}
    response = clients["strict"].post("/fhir", json=batch)
    assert response.status_code == 200, response.text
    bare, typed = ([e["resource"]["id"] for e in entry["resource"].get("entry") or []]
                   for entry in response.json()["entry"])
    assert (bare, typed) == ([], ["alpha-coverage"])


def test_strict_offers_what_open_offers(clients) -> None:
    assert capabilities(clients["strict"])[1] == capabilities(clients["open"])[1]
    assert PROFILES["strict"].resources == PROFILES["open"].resources
