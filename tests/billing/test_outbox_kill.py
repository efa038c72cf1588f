"""A worker process killed in the middle of a write-back: a restarted worker finishes, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import func, select

from smart_app.billing.models import OutboxRow
from smart_app.billing.outbox import OutgoingResource, enqueue
from smart_app.db import utcnow
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig, create_app
from smart_app.statuses import OutboxStatus
from tests.databases import one_transaction
from tests.live_server import serve

ROWS = 12
SYSTEM = "urn:smart-app:kill-test"


def observation(n: int) -> OutgoingResource:
    value = f"minutes-{n}"
    payload = {"resourceType": "Observation", "status": "final", "identifier": [{"system": SYSTEM, "value": value}],
               "code": {"text": "Care management minutes"}, "subject": {"reference": "Patient/ccm-two-chronic"},
               "valueQuantity": {"value": n, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}}
    return OutgoingResource("Observation", "minutes", SYSTEM, value, payload)


def observations_sent(base: str) -> int:
    """How many Observations the sandbox EHR has been sent so far (its request log)."""
    log = httpx.get(f"{base}/_sandbox/requests").json()
    return sum(1 for r in log if r["method"] == "POST" and r["path"].startswith("/fhir/Observation"))


def leases_have_run_out(database_url: str) -> bool:
    """No pending row is leased any more: the clock has passed every lease the dead worker took."""
    with one_transaction(database_url) as db:
        latest = db.scalar(select(func.max(OutboxRow.leased_until)).where(OutboxRow.status == OutboxStatus.PENDING))
    return latest is None or latest <= utcnow()


def wait_for(condition: Callable[[], bool], what: str, limit_s: float = 30) -> None:
    """Poll until `condition` holds; the limit only stops a broken run from hanging."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def worker(database_url: str, tmp: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SMART_APP_DATABASE_URL": database_url, "SMART_APP_DATA_DIR": str(tmp),
           "SMART_APP_SECRET_KEY": "k" * 40}
    return subprocess.Popen([sys.executable, "-m", "smart_app.cli", "outbox", "run", "--org", "kill-org", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_worker_is_finished_by_the_next_exactly_once(database_url: str, tmp_path: Path) -> None:
    # Every request takes a quarter second, so the kill lands part way through the rows.
    config = lambda base: create_app(SandboxConfig(base_url=base, fixtures_dir=data_path("fixtures"),  # noqa: E731
                                                   open=True, latency_ms=250))
    with serve(config) as base:
        with one_transaction(database_url) as db:
            save_organizations(db, [Organization(
                id="kill-org", name="Kill test", issuer=f"{base}/fhir", client_id="x",
                # One request per row (no transaction), so the worker dies between rows.
                extra={"writeback_open": True, "writeback": {"transaction": False}})])
            enqueue(db, organization_id="kill-org", claim_id=None, patient_id="ccm-two-chronic", month="2026-11",
                    resources=[observation(n) for n in range(ROWS)])

        first = worker(database_url, tmp_path, "--once", "--lease-seconds", "1")
        wait_for(lambda: observations_sent(base) >= 3, "the first worker to send three rows")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL
        assert 0 < observations_sent(base) < ROWS, "the kill must land part way through"

        wait_for(lambda: leases_have_run_out(database_url), "the dead worker's leases to run out")
        second = worker(database_url, tmp_path, "--once", "--lease-seconds", "1")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        for n in range(ROWS):
            found = httpx.get(f"{base}/_sandbox/resources/Observation",
                              params={"identifier": f"{SYSTEM}|minutes-{n}"}).json()
            assert found["total"] == 1, (n, found, out)
