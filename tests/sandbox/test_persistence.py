"""A database file keeps resources, tokens and the signing key across restarts."""

from __future__ import annotations

import httpx

from smart_app.sandbox import SandboxConfig, create_app
from tests.live_server import serve
from tests.sandbox.conftest import FIXTURES, make_clients
from tests.sandbox.helpers import bearer, login


def test_restart_keeps_state(tmp_path, keys, jwks_url) -> None:
    database = str(tmp_path / "sandbox.sqlite")

    def factory(base: str):
        return create_app(SandboxConfig(base_url=base, fixtures_dir=FIXTURES, database=database,
                                        clients=make_clients(keys, jwks_url)))

    with serve(factory) as base, httpx.Client(base_url=base) as http:
        token = login(http, base, scope="launch user/*.cruds offline_access")
        created = http.post("/fhir/Task", headers=bearer(token), json={
            "resourceType": "Task", "status": "completed", "intent": "order",
            "for": {"reference": "Patient/alpha"}}).json()
        jwks = http.get("/auth/jwks").json()
        patients = http.get("/fhir/Patient", headers=bearer(token)).json()["total"]

    # The restarted sandbox has a new port, but the same data, tokens and key.
    with serve(factory) as base, httpx.Client(base_url=base) as http:
        assert http.get("/auth/jwks").json() == jwks
        assert http.get(f"/fhir/Task/{created['id']}", headers=bearer(token)).json() == created
        assert http.get("/fhir/Patient", headers=bearer(token)).json()["total"] == patients
        refreshed = http.post("/auth/token", data={
            "grant_type": "refresh_token", "refresh_token": token["refresh_token"],
            "client_id": "public-app"})
        assert refreshed.status_code == 200
