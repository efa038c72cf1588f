"""Search parameters, Bundle shape and paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from smart_app.sandbox.fixtures import shift_value
from tests.sandbox.conftest import sandbox_server
from tests.sandbox.helpers import bearer, login

ICD = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.fixture(scope="module")
def base(keys, jwks_url) -> Iterator[str]:
    """A sandbox of its own: other modules write to the session one, changing counts."""
    with sandbox_server(keys, jwks_url) as url:
        yield url


@pytest.fixture(scope="module")
def token(base: str) -> dict:
    with httpx.Client(base_url=base) as http:
        return login(http, base, scope="launch user/*.rs")


def ids(http: httpx.Client, token: dict, url: str) -> list[str]:
    response = http.get(url, headers=bearer(token))
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    assert bundle["total"] >= len(bundle.get("entry", []))
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def shifted(text: str) -> str:
    """A fixture date as the sandbox stores it after shifting into the current month."""
    days = (datetime.now(UTC).date().replace(day=1) - date(2026, 11, 1)).days
    return shift_value(text, days)


def test_bundle_shape(http: httpx.Client, base: str, token: dict) -> None:
    bundle = http.get("/fhir/Condition?patient=Patient/alpha", headers=bearer(token)).json()
    assert bundle["total"] == 3
    self_link = next(link for link in bundle["link"] if link["relation"] == "self")
    assert self_link["url"].startswith(f"{base}/fhir/Condition?")
    entry = bundle["entry"][0]
    assert entry["fullUrl"] == f"{base}/fhir/Condition/{entry['resource']['id']}"
    assert entry["search"]["mode"] == "match"


def test_patient_and_subject(http: httpx.Client, token: dict) -> None:
    assert len(ids(http, token, "/fhir/Condition?patient=alpha")) == 3
    assert ids(http, token, "/fhir/Condition?subject=Patient/beta") == ["beta-copd"]
    assert ids(http, token, "/fhir/Coverage?beneficiary=Patient/alpha") == ["alpha-coverage"]
    assert ids(http, token, "/fhir/Consent?patient=alpha") == ["alpha-consent"]


def test_id_and_identifier(http: httpx.Client, token: dict) -> None:
    assert ids(http, token, "/fhir/Patient?_id=alpha,beta") == ["alpha", "beta"]
    assert ids(http, token, "/fhir/Patient?identifier=urn:sandbox:mrn|MRN-0002") == ["beta"]
    assert ids(http, token, "/fhir/Patient?identifier=MRN-0001") == ["alpha"]
    assert ids(http, token, "/fhir/Patient?identifier=urn:other|MRN-0001") == []


def test_clinical_status_and_code(http: httpx.Client, token: dict) -> None:
    assert sorted(ids(http, token, "/fhir/Condition?patient=alpha&clinical-status=active")) == [
        "alpha-diabetes", "alpha-hf"]
    assert ids(http, token, "/fhir/Condition?clinical-status=resolved") == ["alpha-flu"]
    assert ids(http, token, f"/fhir/Condition?code={ICD}|I50.9") == ["alpha-hf"]
    assert sorted(ids(http, token, "/fhir/Condition?code=I50.9,J44.9")) == ["alpha-hf",
                                                                           "beta-copd"]
    assert ids(http, token, "/fhir/Condition?code=http://snomed.info/sct|I50.9") == []


def test_category_and_status(http: httpx.Client, token: dict) -> None:
    assert ids(http, token, "/fhir/Observation?patient=alpha&category=vital-signs") == ["alpha-bp"]
    assert len(ids(http, token, "/fhir/Observation?status=final")) == 4
    assert ids(http, token, "/fhir/Encounter?status=planned") == []


def test_date_ranges(http: httpx.Client, token: dict) -> None:
    month = shifted("2026-11-05")[:7]
    this_month = sorted(ids(http, token, f"/fhir/Observation?patient=alpha&date=ge{month}-01"))
    # alpha-bp's period ends on the 2nd of this month, so it overlaps ge the 1st.
    assert this_month == ["alpha-bp", "alpha-phq9-nov"]
    day = shifted("2026-11-05")
    assert ids(http, token, f"/fhir/Observation?patient=alpha&date={day}") == ["alpha-phq9-nov"]
    assert ids(http, token, f"/fhir/Observation?patient=alpha&code=44261-6"
                            f"&date=lt{month}-01") == ["alpha-phq9-sep"]
    window = (f"/fhir/Observation?patient=alpha&date=ge{shifted('2026-09-01')}"
              f"&date=le{shifted('2026-09-30')}")
    assert ids(http, token, window) == ["alpha-phq9-sep"]
    assert ids(http, token, f"/fhir/Encounter?patient=alpha&date=gt{shifted('2026-10-31')}") == [
        "alpha-enc-2"]
    assert ids(http, token, f"/fhir/Consent?date=eq{shifted('2026-11-02')}") == ["alpha-consent"]
    assert ids(http, token, f"/fhir/CarePlan?date=ge{shifted('2026-11-01')}") == [
        "alpha-careplan"]
    assert sorted(ids(http, token, "/fhir/Condition?patient=alpha&date=lt2022")) == [
        "alpha-diabetes", "alpha-hf"]


def test_bad_date_is_400(http: httpx.Client, token: dict) -> None:
    response = http.get("/fhir/Observation?date=ge-yesterday", headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_sort_by_date(http: httpx.Client, token: dict) -> None:
    assert ids(http, token, "/fhir/Encounter?patient=alpha&_sort=-date") == ["alpha-enc-2",
                                                                             "alpha-enc-1"]
    assert ids(http, token, "/fhir/Encounter?patient=alpha&_sort=date") == ["alpha-enc-1",
                                                                            "alpha-enc-2"]


def test_paging_with_next_links(http: httpx.Client, token: dict) -> None:
    seen: list[str] = []
    url: str | None = "/fhir/Observation?_count=2"
    pages = 0
    while url:
        bundle = http.get(url, headers=bearer(token)).json()
        assert bundle["total"] == 4
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        pages += 1
    assert pages == 2
    assert len(seen) == len(set(seen)) == 4


def test_summary_count_and_unknown_params(http: httpx.Client, token: dict) -> None:
    bundle = http.get("/fhir/Condition?_summary=count", headers=bearer(token)).json()
    assert bundle["total"] == 4 and bundle["entry"] == []
    assert len(ids(http, token, "/fhir/Condition?unknown-param=1&patient=alpha")) == 3


def test_post_search(http: httpx.Client, token: dict) -> None:
    response = http.post("/fhir/Condition/_search", data={"patient": "beta"},
                         headers=bearer(token))
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["beta-copd"]


def test_unsupported_modifiers_are_ignored_and_type_modifiers_work(http: httpx.Client,
                                                                   token: dict) -> None:
    assert len(ids(http, token, "/fhir/Condition?patient=alpha&code:text=zzz")) == 3
    assert ids(http, token, "/fhir/Condition?subject:Patient=beta") == ["beta-copd"]
