"""The request log: every request, with status, timing and the authorized client."""

from __future__ import annotations

import httpx

from tests.sandbox.conftest import sandbox_server
from tests.sandbox.helpers import bearer, login


def test_request_log_records_and_clears(keys, jwks_url) -> None:
    with sandbox_server(keys, jwks_url) as base, httpx.Client(base_url=base) as http:
        token = login(http, base)
        assert http.delete("/_sandbox/requests").status_code == 204
        http.get("/fhir/Patient/alpha", headers=bearer(token))
        http.get("/fhir/Condition?patient=alpha", headers=bearer(token))
        http.get("/fhir/Patient/alpha")
        log = http.get("/_sandbox/requests").json()
        assert [(e["method"], e["path"], e["status"]) for e in log] == [
            ("GET", "/fhir/Patient/alpha", 200),
            ("GET", "/fhir/Condition?patient=alpha", 200),
            ("GET", "/fhir/Patient/alpha", 401),
        ]
        assert [e["client_id"] for e in log] == ["public-app", "public-app", None]
        assert all(e["duration_ms"] >= 0 and e["time"].endswith("Z") for e in log)
        http.delete("/_sandbox/requests")
        assert http.get("/_sandbox/requests").json() == []


def test_latency_is_injected(keys, jwks_url) -> None:
    with sandbox_server(keys, jwks_url, open=True, latency_ms=50) as base:
        with httpx.Client(base_url=base) as http:
            http.get("/fhir/Patient/alpha")
            (entry,) = [e for e in http.get("/_sandbox/requests").json()
                        if e["path"] == "/fhir/Patient/alpha"]
            assert entry["duration_ms"] >= 50
