"""Threat: a client floods the launch endpoints (state rows, EHR discovery calls) or the API.

Two app workers share one database, as in production; each carries the `RateLimit` middleware inside
the security headers (the wiring `smart_app.web.app` uses). Each test sends from its own loopback
address (127.0.0.x), so the per-address counters of one test do not touch another's. Both workers read the
time from one `SteppedClock`, which moves only when a test moves it: no window starts or ends by itself
in the middle of a test, however slow the machine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.middleware import Middleware

from smart_app.billing.models import RateLimitRow
from smart_app.demo import sandbox_client, sandbox_org
from smart_app.errors import ConfigError
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from smart_app.settings import load_settings
from smart_app.web.app import create_app
from smart_app.web.ratelimit import RateLimit, default_rate_limit_rules
from tests.databases import BACKENDS, PostgresTemplate, engine_for, fresh_database
from tests.live_server import reserve_socket, serve_on, url_of
from tests.security.helpers import Launched, database, launch
from tests.stack import TEST_SECRET, Stack, biller_headers

DAY = 86400
# Day-long windows for the counting tests; a two-second window on /callback for the tests that start a
# fresh window and the one that moves the clock past a window's end. A launch by a cookie-less browser
# calls /callback twice (the EHR's redirect, then the finishing page's post), so two launches take four.
RULES = {"/launch": (4, DAY), "/callback": (4, 2), "/api/": (6, DAY), "/patient": (3, DAY)}


class SteppedClock:
    """The limiter's clock: it stands still until a test moves it (shared by both workers' threads)."""

    def __init__(self, start: dt.datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        with self._lock:
            self._now += dt.timedelta(seconds=seconds)

    def to_next_window(self, window: int) -> None:
        """Move the clock to the first instant of the next `window`-second window (they start at the epoch)."""
        with self._lock:
            epoch = self._now.timestamp()
            self._now = dt.datetime.fromtimestamp(epoch - epoch % window + window, dt.UTC)


# Today at midnight UTC: the start of a day window, so the day-long windows hold for the whole module.
CLOCK = SteppedClock(dt.datetime.fromtimestamp(time.time() // DAY * DAY, dt.UTC))


@dataclass(frozen=True)
class Workers:
    """The stack whose app runs as two rate-limited workers on one database."""

    stack: Stack
    urls: tuple[str, str]


def limited_app(settings: object, orgs: list, engine: object) -> object:
    # The settings turn the production limits off, so only these rules count: with both, a request was
    # counted twice whenever the production window and the test's started at the same second.
    app = create_app(settings, orgs, engine)
    # Inside SecurityHeaders, as app.py lists it: refusals carry the CSP and no-store headers too.
    app.user_middleware.append(Middleware(RateLimit, rules=RULES, clock=CLOCK))
    return app


@contextlib.contextmanager
def two_workers(database_url: str, data_dir: Path) -> Iterator[Workers]:
    app_socks, sandbox_sock = (reserve_socket(), reserve_socket()), reserve_socket()
    urls = (url_of(app_socks[0]), url_of(app_socks[1]))
    sandbox_url = url_of(sandbox_sock)
    settings = load_settings(env={}, base_url=urls[0], database_url=database_url, data_dir=data_dir,
                             secret_key=TEST_SECRET, rate_limits=False)
    org = sandbox_org(sandbox_url)
    with engine_for(database_url) as engine:
        sandbox = create_sandbox(SandboxConfig(base_url=sandbox_url, fixtures_dir=data_path("fixtures"),
                                               clients=[sandbox_client(engine, settings, org)],
                                               app_launch_url=settings.launch_url))
        # The second worker builds its own engine and pool from the URL, as another process would.
        with serve_on(sandbox_sock, sandbox), serve_on(app_socks[0], limited_app(settings, [org], engine)), \
                serve_on(app_socks[1], limited_app(settings, [], None)):
            yield Workers(Stack(app_url=urls[0], sandbox_url=sandbox_url, settings=settings, organization=org), urls)


@pytest.fixture(scope="module", params=BACKENDS)
def workers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            pg_template: PostgresTemplate) -> Iterator[Workers]:
    tmp = tmp_path_factory.mktemp(f"ratelimit-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url, two_workers(url, tmp) as running:
        yield running


def two_launches(workers: Workers) -> tuple[Launched, Launched]:
    """Two sessions, launched from 127.0.0.1 in a fresh /callback window, so the four callbacks a window
    allows are not used up by an earlier test's launches."""
    CLOCK.to_next_window(RULES["/callback"][1])
    return launch(workers.stack), launch(workers.stack)


def client_from(address: str) -> httpx.Client:
    """An HTTP client whose requests come from `address` (any of 127.0.0.0/8 reaches loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=20)


def bogus_launch(client: httpx.Client, base: str) -> httpx.Response:
    return client.get(f"{base}/launch", params={"iss": "https://unknown.example/fhir", "launch": "x"})


def test_default_rules_limit_launch_and_api() -> None:
    assert default_rate_limit_rules() == {"/launch": (30, 60), "/signin": (30, 60), "/callback": (30, 60),
                                          "/api/": (300, 60), "/patient": (60, 60), "/billing": (60, 60),
                                          "/panel": (30, 60), "/panel.csv": (10, 60), "/admin": (30, 60)}
    limiter = RateLimit(None, rules={**default_rate_limit_rules(), "/api/v1/entries": (10, 60)})
    assert limiter.rule_for("/launch").limit == 30 and limiter.rule_for("/launchpad") is None
    assert limiter.rule_for("/api/v1/entries").limit == 10, "the longest prefix wins"
    assert limiter.rule_for("/api/v1/month").per_session and not limiter.rule_for("/callback").per_session
    assert limiter.rule_for("/patient").per_session
    for path, limit in (("/billing", 60), ("/billing/superbill.pdf", 60), ("/panel", 30), ("/panel.csv", 10)):
        assert limiter.rule_for(path).limit == limit and limiter.rule_for(path).per_session, path
    for path in ("/patients", "/healthz", "/.well-known/jwks.json", "/static/app.js"):
        assert limiter.rule_for(path) is None
    with pytest.raises(ValueError):
        RateLimit(None, rules={"/launch": (0, 60)})


def test_limits_are_set_from_the_environment() -> None:
    env = {"SMART_APP_RATE_LIMITS": "/launch=300/60, /api/=1000/60", "SMART_APP_SECRET_KEY": TEST_SECRET}
    settings = load_settings(env=env, data_dir=Path("/nonexistent"))
    assert settings.rate_limits and settings.rate_limit_overrides == (("/launch", 300, 60), ("/api/", 1000, 60))
    assert not load_settings(env={**env, "SMART_APP_RATE_LIMITS": "off"}, data_dir=Path("/x")).rate_limits
    with pytest.raises(ConfigError, match="prefix=requests/seconds"):
        load_settings(env={**env, "SMART_APP_RATE_LIMITS": "/launch=lots"}, data_dir=Path("/x"))
    with pytest.raises(ConfigError, match="unreadable limit 'launch=3/60'"):
        load_settings(env={**env, "SMART_APP_RATE_LIMITS": "launch=3/60"}, data_dir=Path("/x"))


def test_launch_over_the_limit_gets_429_with_retry_after(workers: Workers) -> None:
    with client_from("127.0.0.3") as client:
        answers = [bogus_launch(client, workers.urls[i % 2]) for i in range(6)]
        health = client.get(f"{workers.urls[0]}/healthz")
    assert [a.status_code for a in answers] == [400] * 4 + [429] * 2, "four per address, counted across workers"
    refused = answers[4]
    assert 0 < int(refused.headers["retry-after"]) <= DAY
    assert refused.headers["content-type"].startswith("text/html")
    assert "Too many requests" in refused.text and "Wait" in refused.text
    assert "frame-ancestors" in refused.headers["content-security-policy"]
    assert refused.headers["cache-control"] == "no-store"
    assert health.status_code == 200, "paths without a rule are not limited"
    with client_from("127.0.0.13") as other:
        assert bogus_launch(other, workers.urls[0]).status_code == 400, "another address has its own count"


def test_api_is_limited_per_session_across_workers(workers: Workers) -> None:
    first, second = two_launches(workers)
    answers = [httpx.get(f"{workers.urls[i % 2]}/api/v1/month", headers=first.bearer, timeout=20)
               for i in range(8)]
    assert [a.status_code for a in answers] == [200] * 6 + [429] * 2
    refused = answers[6]
    assert refused.json()["error"]["title"] == "Too many requests"
    assert "Wait" in refused.json()["error"]["hint"]
    assert 0 < int(refused.headers["retry-after"]) <= DAY
    # Another session (same address) has its own allowance.
    assert httpx.get(f"{workers.urls[1]}/api/v1/month", headers=second.bearer, timeout=20).status_code == 200


def test_the_patient_page_is_limited_per_session(workers: Workers) -> None:
    # Each load of the page reads the patient's record from the EHR: a loop reloading it must not flood the EHR.
    first, second = two_launches(workers)
    answers = [httpx.get(f"{workers.urls[i % 2]}/patient", headers=first.bearer, timeout=20) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "Too many requests" in answers[3].text and answers[3].headers["content-type"].startswith("text/html")
    assert httpx.get(f"{workers.urls[0]}/patient", headers=second.bearer, timeout=20).status_code == 200


def test_made_up_session_handles_count_against_the_address(workers: Workers) -> None:
    with client_from("127.0.0.4") as client:
        answers = [client.get(f"{workers.urls[i % 2]}/api/v1/month", headers={"Authorization": f"Bearer fake-{i}"})
                   for i in range(8)]
    assert [a.status_code for a in answers] == [401] * 6 + [429] * 2


def test_the_count_starts_again_when_the_window_ends(workers: Workers) -> None:
    callback = f"{workers.urls[0]}/callback"
    with client_from("127.0.0.5") as client:
        CLOCK.to_next_window(RULES["/callback"][1])
        answers = [client.post(callback, data={"state": "forged", "code": "x"}) for _ in range(5)]
        assert [a.status_code for a in answers] == [400] * 4 + [429]
        wait = int(answers[4].headers["retry-after"])
        assert wait == 2, "the whole window is left: the clock stood at its start"
        CLOCK.advance(wait - 0.001)
        assert client.post(callback, data={"state": "forged", "code": "x"}).status_code == 429, "not yet over"
        CLOCK.advance(0.001)
        assert client.post(callback, data={"state": "forged", "code": "x"}).status_code == 400


def test_concurrent_requests_never_exceed_the_limit(workers: Workers) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def hit(index: int) -> None:
        with client_from("127.0.0.6") as client:
            status = bogus_launch(client, workers.urls[index % 2]).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [400] * 4 + [429] * 12


def test_ended_windows_are_deleted(workers: Workers) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    with database(workers.stack) as db:
        db.add(RateLimitRow(key="/launch|ip:192.0.2.1", window_start=old, count=9))
    with client_from("127.0.0.7") as client:  # a new address opens a new window, which sweeps
        assert bogus_launch(client, workers.urls[0]).status_code == 400
    with database(workers.stack) as db:
        keys = set(db.scalars(select(RateLimitRow.key)))
    assert "/launch|ip:192.0.2.1" not in keys
    assert "/launch|ip:127.0.0.7" in keys, "current windows stay"


@pytest.mark.parametrize(("path", "limit"), [("/panel.csv", 10), ("/panel", 30), ("/billing/superbill.csv", 60)])
def test_every_page_behind_a_session_is_limited_per_session(secure_stack: Stack, path: str, limit: int) -> None:
    # The production limits (the secure stack runs with them): twice the limit plus one always puts more than the
    # limit into one window, even when a minute ends among the requests. Each run launches from its own address,
    # so the stack's other tests keep their launch allowance.
    address = f"127.0.0.{40 + len(path)}"
    first, second = biller_headers(secure_stack, address=address), biller_headers(secure_stack, address=address)
    with httpx.Client(timeout=20) as client:
        statuses = [client.get(f"{secure_stack.app_url}{path}", headers=first).status_code
                    for _ in range(2 * limit + 1)]
        assert 429 in statuses
        # The sign-in landed on /billing, one request of its window: the rest below the limit answers.
        assert set(statuses[:limit - 1]) <= {200, 404}, "below the limit the page answers (404: no approved claims)"
        assert client.get(f"{secure_stack.app_url}{path}", headers=second).status_code in (200, 404)
