"""The project's fixtures load into the sandbox and every patient can be read."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from smart_app.sandbox import SandboxClient, SandboxConfig, create_app
from tests.live_server import serve
from tests.sandbox.helpers import REDIRECT_URI, bearer, login

PROJECT_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def fixture_patients() -> list[str]:
    ids = []
    for path in sorted(PROJECT_FIXTURES.glob("*.json")):
        for entry in json.loads(path.read_text()).get("entry", []):
            if entry["resource"]["resourceType"] == "Patient":
                ids.append(entry["resource"]["id"])
    return ids


def test_every_project_patient_is_readable() -> None:
    assert len(fixture_patients()) >= 8, "the project ships at least eight scenario patients"
    def factory(base: str):
        return create_app(SandboxConfig(base_url=base, fixtures_dir=PROJECT_FIXTURES,
                                        clients=[SandboxClient("public-app", [REDIRECT_URI])]))

    with serve(factory) as base, httpx.Client(base_url=base) as http:
        for patient in fixture_patients():
            token = login(http, base, patient=patient,
                          scope="launch patient/Patient.rs patient/Condition.rs")
            assert token["patient"] == patient
            response = http.get(f"/fhir/Patient/{patient}", headers=bearer(token))
            assert response.status_code == 200
            conditions = http.get("/fhir/Condition", headers=bearer(token)).json()
            assert all(e["resource"]["subject"]["reference"] == f"Patient/{patient}"
                       for e in conditions.get("entry", []))
        chart = http.get(f"/ehr/chart/{fixture_patients()[0]}").text
        assert 'value="pr-care-manager" selected' in chart
