"""`smart-app serve --workers 2` on one PostgreSQL database, driven at once over HTTP: what must hold across
processes (one running timer per person, no overlapping entries, rate limits counted once, the audit chain), the
backend token fetched by two processes at once, and a client that hangs up mid-request."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, func, select

from bench.data import organization, seed_entries, seed_organization, seed_patients
from smart_app.billing.models import ClaimRow, RollupBatchRow, ScheduledRunRow
from smart_app.billing.worker import MONTH_END_JOB, month_to_close
from smart_app.db import head_revision, utcnow
from smart_app.launch.models import BackendTokenRow
from smart_app.ledger.models import TimerRow
from smart_app.statuses import RollupBatchStatus
from tests.databases import PostgresTemplate, engine_for, fresh_database, one_transaction
from tests.scale.deployment import Deployment, deployment, documented, stop
from tests.security.helpers import Launched, from_address, launch, manual_entry


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, pg_template: PostgresTemplate) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("serve-workers")
    with fresh_database("postgresql", folder, pg_template) as url, deployment(url, folder) as (up, _):
        yield up


def at_once(count: int, call: object) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call(), range(count)))  # type: ignore[operator]


def test_health_and_readiness_answer(running: Deployment) -> None:
    assert httpx.get(f"{running.stack.app_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{running.stack.app_url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "migration": head_revision()}


def test_the_documented_commands_run_as_written(running: Deployment) -> None:
    """docs/operations.md's one-host block: `serve --workers 2` is already running from it (the fixture); here
    `db upgrade`, `worker` (its month-end rollup through the EHR's Backend Services) and the readiness check."""
    port = running.stack.app_url.rsplit(":", 1)[1]
    upgraded = running.command(*documented("smart-app", "db", 8000)[1:])
    assert upgraded.returncode == 0 and head_revision() in upgraded.stdout
    curl = documented("curl", "", int(port))
    ready = (subprocess.run(curl, capture_output=True, text=True, check=False) if shutil.which("curl")
             else None)
    assert ready is None or (ready.returncode == 0 and '"ready"' in ready.stdout)
    worker = running.start("worker-doc", *documented("smart-app", "worker", 8000)[1:])
    org = running.stack.organization
    month = month_to_close(org, utcnow())

    def month_end_done() -> bool:
        with one_transaction(running.stack.settings.database_url) as db:
            job = db.get(ScheduledRunRow, (MONTH_END_JOB, org.id, month))
            return job is not None and job.finished_at is not None
    wait_for(month_end_done)
    assert stop(worker) == 0
    log = running.log("worker-doc")
    assert "started" in log and "stopped" in log and "Traceback" not in log
    assert f"month-end rollup of {month} for {org.id} finished" in log


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_both_workers_answer_and_log_json(running: Deployment) -> None:
    """The port is shared by two processes: concurrent requests are answered by both (their access log says)."""
    nurse = launch(running.stack, address="127.0.0.2")
    answered_by: set[int] = set()
    for _ in range(3):  # which worker accepts a connection is the kernel's choice: a few rounds to see both
        assert all(a.status_code == 200 for a in at_once(24, lambda: nurse.api("GET", "/month")))
        time.sleep(0.5)
        lines = json_lines(running.log("serve"))
        assert lines and all({"time", "level", "logger", "message", "process"} <= set(line) for line in lines)
        answered_by = {line["process"] for line in lines if line["logger"] == "uvicorn.access"
                       and "/api/v1/month" in line["message"]}
        if len(answered_by) == 2:
            break
    assert len(answered_by) == 2, answered_by


def test_one_running_timer_per_person_under_concurrent_starts(running: Deployment) -> None:
    nurse = launch(running.stack, address="127.0.0.3")
    answers = at_once(12, lambda: nurse.api("POST", "/timers", json={"program": "ccm", "activity": "patient-call"}))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 11
    with one_transaction(running.stack.settings.database_url) as db:
        assert db.scalar(select(func.count()).select_from(TimerRow).where(TimerRow.stopped_at.is_(None))) == 1


def test_overlapping_entries_are_refused_across_workers(running: Deployment) -> None:
    nurse = launch(running.stack, address="127.0.0.4")
    body = manual_entry(10)
    answers = at_once(10, lambda: nurse.api("POST", "/entries", json=body))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9, [a.text for a in answers if a.status_code
                                                                          not in (201, 409)]


def test_rate_limits_are_counted_once_across_workers(running: Deployment) -> None:
    def bogus() -> httpx.Response:
        with from_address("127.0.0.9") as client:
            return client.get(f"{running.stack.app_url}/launch",
                              params={"iss": "https://x.example/fhir", "launch": "x"})
    # The windows are minutes from the epoch: start well inside one, so the 40 requests are counted in one window.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    answers = at_once(40, bogus)
    assert sorted(a.status_code for a in answers) == [400] * 30 + [429] * 10, "30 a minute per address, in all"


def test_the_audit_chain_is_intact_after_concurrent_writes(running: Deployment) -> None:
    nurses = [launch(running.stack, address=f"127.0.0.{n}") for n in (5, 6)]
    bodies = [manual_entry(3) for _ in range(12)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: nurses[i % 2].api("POST", "/entries", json=bodies[i]), range(12)))
    assert all(a.status_code in (201, 409) for a in answers)
    verified = running.command("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_backend_token_fetched_by_two_processes_at_once(running: Deployment) -> None:
    org_id = running.stack.organization.id
    for _ in range(2):
        with one_transaction(running.stack.settings.database_url) as db:
            db.execute(delete(BackendTokenRow))
        at = time.time() + 2.0
        children = [subprocess.Popen([sys.executable, "-m", "tests.scale.token_child", org_id, str(at)],
                                     env=running.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    for _ in range(2)]
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0 and out.strip() == "token", err
            assert "UniqueViolation" not in err
        with one_transaction(running.stack.settings.database_url) as db:
            assert db.scalar(select(func.count()).select_from(BackendTokenRow)) == 1


def test_a_client_that_hangs_up_mid_request_is_an_info_line(running: Deployment) -> None:
    nurse: Launched = launch(running.stack, address="127.0.0.7")
    host, port = running.stack.app_url.removeprefix("http://").split(":")
    for _ in range(4):  # some land on each worker
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"POST /api/v1/entries HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {nurse.handle}\r\n"
                         "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"program\":".encode())
            time.sleep(0.3)  # the endpoint is waiting for the rest of the body when the client goes
    time.sleep(1.0)
    log = running.log("serve")
    assert log.count("client disconnected during POST /api/v1/entries") == 4, log[-3000:]
    assert "unexpected error" not in log and "Traceback" not in log


def test_serve_refuses_workers_on_sqlite(tmp_path: Path, running: Deployment) -> None:
    env = {**running.env, "SMART_APP_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    answer = subprocess.run([sys.executable, "-m", "smart_app.cli", "serve", "--workers", "2", "--port", "9"],
                            env=env, text=True, capture_output=True, timeout=60, check=False)
    assert answer.returncode == 2 and "Several workers need PostgreSQL" in answer.stderr


def wait_for(condition: object, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_workers_roll_up_the_closed_month_once_and_sigterm_drains(running: Deployment) -> None:
    url, org = running.stack.settings.database_url, organization("org-w")
    month = month_to_close(org, utcnow())
    assert month is not None
    with engine_for(url) as engine:
        seed_organization(engine, org)
        seed_patients(engine, 400, month, org_id=org.id)
        seed_entries(engine, 400, 1600, month, org_id=org.id)
    first = running.start("worker-a", "worker", "--interval", "0.3", "--rollup-source", "cache")
    wait_for(lambda: f"month-end rollup of {month} for org-w: working on run" in running.log("worker-a"))
    time.sleep(1.0)
    assert stop(first) == 0, running.log("worker-a")
    assert "stopped" in running.log("worker-a")
    with one_transaction(url) as db:
        statuses = set(db.scalars(select(RollupBatchRow.status).where(RollupBatchRow.organization_id == org.id)))
        job = db.get_one(ScheduledRunRow, (MONTH_END_JOB, org.id, month))
        assert RollupBatchStatus.CLAIMED not in statuses, "SIGTERM let the batch in hand finish and close"
        assert job.finished_at is None and RollupBatchStatus.PENDING in statuses, "stopped before the month was done"
    # Two more workers at once: they share what is left of the same run, and the job is done once.
    others = [running.start(name, "worker", "--interval", "0.3", "--rollup-source", "cache")
              for name in ("worker-b", "worker-c")]

    def finished() -> bool:
        with one_transaction(url) as db:
            return db.get_one(ScheduledRunRow, (MONTH_END_JOB, org.id, month)).finished_at is not None
    wait_for(finished)
    assert [stop(p) for p in others] == [0, 0]
    with one_transaction(url) as db:
        versions = db.execute(select(ClaimRow.patient_id, func.count()).where(
            ClaimRow.organization_id == org.id, ClaimRow.month == month).group_by(ClaimRow.patient_id)).all()
        runs = set(db.scalars(select(RollupBatchRow.run_id).where(RollupBatchRow.organization_id == org.id)))
        job = db.get_one(ScheduledRunRow, (MONTH_END_JOB, org.id, month))
    assert len(versions) == 400 and all(count == 1 for _, count in versions), "each patient-month proposed once"
    assert len(runs) == 1 and job.outcome.startswith("400 patients"), job.outcome
    logs = running.log("worker-b") + running.log("worker-c")
    assert "Traceback" not in logs and "UniqueViolation" not in logs
