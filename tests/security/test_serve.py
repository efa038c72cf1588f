"""Threats against `smart-app serve` itself, run as an operator runs it (a real process on a loopback port).

- a host started without `SMART_APP_SECRET_KEY` makes up its own key, so hosts sharing a database cannot open
  each other's sessions and tokens: it must refuse to start and say how to set the key;
- the access log writes `/callback?code=...` and `/launch?launch=...` whole: their query strings are redacted;
- any client names its own address in `X-Forwarded-For`, escaping per-address rate limits, unless only the
  proxies named in `SMART_APP_FORWARDED_ALLOW_IPS` are believed;
- expired pending launches and ended sessions pile up: start-up deletes them.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from smart_app.db import make_engine, session_factory, transaction, utcnow
from smart_app.launch.models import AppSession, PendingLaunch
from smart_app.launch.organizations import Organization, save_organizations
from tests.databases import BACKENDS, PostgresTemplate, fresh_database
from tests.stack import TEST_SECRET

RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def environment(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMART_APP_")}
    env.update({"SMART_APP_DATABASE_URL": database_url, "SMART_APP_DATA_DIR": str(data_dir),
                "SMART_APP_LAUNCH_DIR": str(data_dir / "launch"), **extra})
    (data_dir / "launch").mkdir(exist_ok=True)
    return env


@contextlib.contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[tuple[str, list[str]]]:
    """`smart-app serve --port 0 ARGS` until the block ends: (its URL, every line it has printed so far)."""
    process = subprocess.Popen([sys.executable, "-m", "smart_app.cli", "serve", "--port", "0", *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if RUNNING.search(line):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "".join(lines)
        url = next(RUNNING.search(line).group(1) for line in lines if RUNNING.search(line))  # type: ignore[union-attr]
        yield url, lines
    finally:
        process.terminate()
        process.wait(timeout=20)
        reader.join(timeout=5)


@pytest.fixture(params=BACKENDS)
def migrated(request: pytest.FixtureRequest, tmp_path: Path, pg_template: PostgresTemplate) -> Iterator[str]:
    with fresh_database(request.param, tmp_path, pg_template) as url:
        yield url


def seed_expired_rows(database_url: str) -> None:
    """Before start-up: a pending launch past its ten minutes, an ended session, and a fresh one of each."""
    engine = make_engine(database_url)
    now = utcnow()
    pending = {"organization_id": "clinic", "fhir_base": "https://ehr.example.org/fhir",
               "token_endpoint": "https://ehr.example.org/token", "code_verifier": "v", "nonce": "n",
               "jwks_uri": "", "id_token_issuer": "", "capabilities": {}, "scope": "launch"}
    session = {"organization_id": "clinic", "fhir_base": "https://ehr.example.org/fhir",
               "token_endpoint": "https://ehr.example.org/token", "patient_id": "p1", "scope": "launch",
               "access_token_enc": "x", "token_expires_at": now, "capabilities": {}, "created_at": now}
    with transaction(session_factory(engine)) as db:
        save_organizations(db, [Organization(id="clinic", name="Clinic", issuer="https://ehr.example.org/fhir",
                                             client_id="app")])
    with transaction(session_factory(engine)) as db:
        db.add_all([PendingLaunch(state="old", created_at=now - timedelta(minutes=11), **pending),
                    PendingLaunch(state="fresh", created_at=now - timedelta(minutes=1), **pending),
                    AppSession(id_hash="ended", expires_at=now - timedelta(seconds=1), **session),
                    AppSession(id_hash="live", expires_at=now + timedelta(hours=1), **session)])
    engine.dispose()


@dataclass(frozen=True)
class Served:
    """`smart-app serve` as an operator starts it: its URL, its database and what it has printed so far."""

    url: str
    database_url: str
    env: dict[str, str]
    lines: list[str]


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           pg_template: PostgresTemplate) -> Iterator[Served]:
    """One server per backend for this module (each start loads the rule sets and code tables: seconds)."""
    tmp = tmp_path_factory.mktemp(f"serve-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url:
        seed_expired_rows(url)
        env = environment(url, tmp, SMART_APP_SECRET_KEY=TEST_SECRET)
        with serving(env) as (base, lines):
            yield Served(base, url, env, lines)


def test_serve_refuses_to_start_without_a_secret_key(migrated: str, tmp_path: Path) -> None:
    env = environment(migrated, tmp_path)
    ran = subprocess.run([sys.executable, "-m", "smart_app.cli", "serve", "--port", "0"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2
    assert "SMART_APP_SECRET_KEY is not set" in ran.stderr
    assert "export SMART_APP_SECRET_KEY=" in ran.stderr and "the same on every host" in ran.stderr
    assert not (tmp_path / "secret_key").exists(), "no key was made up in the data folder"


def test_the_access_log_leaves_out_launch_and_callback_query_strings(served: Served) -> None:
    launched = httpx.get(f"{served.url}/launch", params={"iss": "https://ehr.example.org/x", "launch": "LAUNCH-SECRET"})
    own_url = httpx.get(f"{served.url}/launch/clinic", params={"iss": "https://ehr.example.org/y",
                                                              "launch": "ORG-LAUNCH-SECRET"})
    called = httpx.get(f"{served.url}/callback", params={"code": "CODE-SECRET", "state": "STATE-SECRET"})
    panel = httpx.get(f"{served.url}/panel", params={"month": "2026-11"})
    # An unknown issuer; a callback without the launch's cookie (the finishing page); the panel's own sign-in.
    assert (launched.status_code, own_url.status_code, called.status_code, panel.status_code) == (400, 400, 200, 303)
    deadline = time.monotonic() + 10
    while "GET /panel?" not in "".join(served.lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    log = "".join(served.lines)
    assert '"GET /launch?[query redacted] HTTP/1.1" 400' in log
    assert '"GET /launch/clinic?[query redacted] HTTP/1.1" 400' in log
    assert '"GET /callback?[query redacted] HTTP/1.1" 200' in log
    assert '"GET /panel?month=2026-11 HTTP/1.1" 303' in log, "other query strings stay, for debugging"
    for secret in ("LAUNCH-SECRET", "ORG-LAUNCH-SECRET", "CODE-SECRET", "STATE-SECRET", "ehr.example.org/x",
                   "ehr.example.org/y"):
        assert secret not in log


def launches_from(url: str, addresses: int) -> list[int]:
    """One `/launch` from each of `addresses` made-up client addresses, as a client claims them."""
    return [httpx.get(f"{url}/launch", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(1, addresses + 1)]


def test_forwarded_addresses_are_believed_only_from_named_proxies(served: Served) -> None:
    # 30 launches a minute per address: a client naming a new address each time must not get past it. (61
    # requests exceed 30 in one minute-aligned window even when a window ends among them.)
    assert 429 in launches_from(served.url, 61)
    # The proxy in front (here: loopback) is named, so the address it forwards is the client's.
    with serving({**served.env, "SMART_APP_FORWARDED_ALLOW_IPS": "127.0.0.1"}) as (url, _):
        assert 429 not in launches_from(url, 61)


def test_start_up_deletes_expired_pending_launches_and_ended_sessions(served: Served) -> None:
    assert "Deleted 1 expired pending launch(es), 1 ended session(s)" in served.lines[0]
    engine = make_engine(served.database_url)
    with session_factory(engine)() as db:
        assert db.scalars(select(PendingLaunch.state)).all() == ["fresh"]
        assert db.scalars(select(AppSession.id_hash)).all() == ["live"]
    engine.dispose()
