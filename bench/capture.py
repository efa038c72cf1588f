"""Benchmark 2, capture under load: 50 simulated clinicians, each with their own launched session, loop
start timer -> stop timer -> log an entry against the app under uvicorn on loopback for a bounded time.
The same load then hits a bare Starlette endpoint mounted on the same server (bench.stack.WithBare): the
reference for what the server, the loopback and the client cost without the app.

Two runs against the app: *paced*, where each clinician pauses between clicks (exponential think time,
mean `THINK_S`), which is how people use the page and what the p95 target is judged on; and *saturation*,
with no pause at all, which measures the most the server does per second. In a closed loop with no pause,
every request waits for the other 49 clinicians' requests ahead of it (Little's law: latency = 50 /
throughput), so its latency says how busy the server is, not how fast a click is answered.

The load runs in a separate process (`python -m bench.capture client ...`, asyncio + httpx) so the clients do
not share the server's interpreter lock; the server (app + sandbox) runs in this process's uvicorn threads.
Latency is per request, measured by the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.engine import make_url

from bench.common import ROOT, percentile
from bench.stack import BARE_PATH, SECRET, BenchStack, new_browser, open_chart, page_handle, running_stack
from smart_app.web.ratelimit import default_rate_limit_rules

CLINICIANS = 50
# Mean pause between one clinician's requests in the paced run: one click a second each, far busier than a
# person documenting care (a timer start or stop every few minutes), 50 requests a second in all.
THINK_S = 1.0
ENTRY_MINUTES = 2
PATIENTS = ("ccm-two-chronic", "complex-ccm-high", "pcm-single-complex", "bhi-depression-phq9")


# The sandbox organization file maps this PractitionerRole code to clinical staff (launch/sandbox.toml).
CLINICAL_STAFF = {"system": "urn:oid:1.2.840.114350.1.13.9999.1.7.10.836982.1050", "code": "32",
                  "display": "Clinical staff nurse"}


def add_clinicians(stack: BenchStack, count: int) -> list[str]:
    """Practitioners in the sandbox EHR, one per simulated clinician (timers and overlaps are per person), each
    with the PractitionerRole the organization maps to clinical staff, so they may record time."""
    store = stack.sandbox.store
    ids = []
    for n in range(count):
        rid = f"bench-clinician-{n:02d}"
        if not store.exists("Practitioner", rid):
            store.save({"resourceType": "Practitioner", "id": rid, "active": True,
                        "name": [{"family": f"Clinician{n:02d}", "given": ["Bench"], "suffix": ["RN"]}]})
            store.save({"resourceType": "PractitionerRole", "id": f"role-{rid}", "active": True,
                        "practitioner": {"reference": f"Practitioner/{rid}"}, "code": [{"coding": [CLINICAL_STAFF]}]})
        ids.append(rid)
    return ids


def launch_sessions(stack: BenchStack, users: list[str]) -> list[str]:
    """One launch per clinician (its own browser); the bearer handles the pages carry."""
    handles = []
    for n, user in enumerate(users):
        with new_browser() as browser:
            page = open_chart(browser, stack, PATIENTS[n % len(PATIENTS)], user=user)
            if page.status_code != 200:
                raise RuntimeError(f"launch for {user} answered {page.status_code}: {page.text[:300]}")
            handles.append(page_handle(page.text))
    return handles


def entry_slots(timezone: str, count: int) -> list[tuple[str, str]]:
    """(local date, time) starts `ENTRY_MINUTES` apart in the current month, all in the past, one entry each.

    Early on the 1st of a month there are few: clinicians stop when theirs run out, and the run has fewer
    requests (its `requests` figure says so).
    """
    zone = ZoneInfo(timezone)
    now = dt.datetime.now(zone)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    slots = []
    moment = start
    while len(slots) < count and moment + dt.timedelta(minutes=10) < now:
        slots.append((moment.date().isoformat(), moment.strftime("%H:%M")))
        moment += dt.timedelta(minutes=ENTRY_MINUTES)
    return slots


# ---------------------------------------------------------------- the load (child process)


async def _clinician(http: httpx.AsyncClient, base: str, handle: str, slots: list[tuple[str, str]], until: float,
                     samples: list[tuple[str, float, int]], think_s: float, seed: int) -> None:
    headers = {"Authorization": f"Bearer {handle}"}
    pauses = random.Random(seed)

    async def call(kind: str, path: str, body: dict) -> httpx.Response:
        if think_s:
            await asyncio.sleep(pauses.expovariate(1 / think_s))
        started = time.perf_counter()
        answer = await http.post(f"{base}{path}", json=body, headers=headers)
        samples.append((kind, time.perf_counter() - started, answer.status_code))
        return answer

    i = 0
    while time.perf_counter() < until and i < len(slots):
        started = await call("timer-start", "/api/v1/timers", {"program": "ccm", "activity": "patient-call"})
        timer = (started.json().get("timer") or {}).get("id") if started.status_code == 201 else None
        if timer:
            await call("timer-stop", f"/api/v1/timers/{timer}/stop", {})
        day, at = slots[i]
        await call("entry", "/api/v1/entries", {"program": "ccm", "activity": "record-review", "date": day,
                                                "time": at, "minutes": ENTRY_MINUTES})
        i += 1


async def _bare(http: httpx.AsyncClient, base: str, until: float, samples: list[tuple[str, float, int]]) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        answer = await http.post(f"{base}{BARE_PATH}", json={"program": "ccm"})
        samples.append(("bare", time.perf_counter() - started, answer.status_code))


async def _load(spec: dict) -> dict:
    samples: list[tuple[str, float, int]] = []
    limits = httpx.Limits(max_connections=spec["clients"] + 5, max_keepalive_connections=spec["clients"] + 5)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        until = started + spec["seconds"]
        if spec["mode"] == "app":
            await asyncio.gather(*(_clinician(http, spec["base"], handle, spec["slots"], until, samples,
                                              spec["think_s"], seed)
                                   for seed, handle in enumerate(spec["handles"])))
        else:
            await asyncio.gather(*(_bare(http, spec["base"], until, samples) for _ in range(spec["clients"])))
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "samples": samples, "think_s": spec.get("think_s", 0)}


def _summary(result: dict) -> dict:
    samples = result["samples"]
    times = [s[1] * 1000 for s in samples]
    by_kind: dict[str, list[float]] = {}
    for kind, seconds, _ in samples:
        by_kind.setdefault(kind, []).append(seconds * 1000)
    errors = [status for _, _, status in samples if status >= 400]
    return {"requests": len(samples), "seconds": round(result["elapsed"], 1), "think_s": result["think_s"],
            "rps": round(len(samples) / result["elapsed"], 1),
            "p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1),
            "p99_ms": round(percentile(times, 99), 1), "errors": len(errors),
            "error_statuses": sorted(set(errors)),
            "p95_ms_by_kind": {k: round(percentile(v, 95), 1) for k, v in sorted(by_kind.items())}}


def _run_load(spec: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.capture", "client"], input=json.dumps(spec), cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load client failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout)


@contextlib.contextmanager
def served(database_url: str, folder: Path, workers: int) -> Iterator[str]:
    """`smart-app serve --workers N` as a process on the benchmark's database; its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    launch_dir = folder / f"no-launch-files-{workers}"  # the organization is in the database already
    launch_dir.mkdir(exist_ok=True)
    # Limits of 10^9: every request is still counted (its upsert measured), none refused; as bench/stack.py.
    limits = ",".join(f"{prefix}=1000000000/60" for prefix in default_rate_limit_rules())
    env = {**os.environ, "SMART_APP_DATABASE_URL": database_url, "SMART_APP_SECRET_KEY": SECRET,
           "SMART_APP_BASE_URL": base, "SMART_APP_DATA_DIR": str(folder), "SMART_APP_LAUNCH_DIR": str(launch_dir),
           "SMART_APP_RATE_LIMITS": limits}
    server = subprocess.Popen([sys.executable, "-m", "smart_app.cli", "serve", "--workers", str(workers),
                               "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve --workers {workers} did not become ready")
            time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def run(database_url: str, folder: Path, *, quick: bool) -> dict:
    seconds = 8 if quick else 15
    processes = make_url(database_url).get_backend_name() == "postgresql"
    with running_stack(database_url, folder) as stack:
        users = add_clinicians(stack, CLINICIANS)
        handles = launch_sessions(stack, users)
        slots = entry_slots(stack.organization.timezone, 4000)
        # Each run logs into its own share of the slots: a person's entries must not overlap.
        share = len(slots) // (4 if processes else 2)
        paced = _run_load({"mode": "app", "base": stack.app_url, "handles": handles, "slots": slots[:share],
                           "seconds": seconds, "clients": CLINICIANS, "think_s": THINK_S})
        app = _run_load({"mode": "app", "base": stack.app_url, "handles": handles, "slots": slots[share:2 * share],
                         "seconds": seconds, "clients": CLINICIANS, "think_s": 0})
        bare = _run_load({"mode": "bare", "base": stack.app_url, "seconds": seconds, "clients": CLINICIANS})
        by_workers = {}
        if processes:
            # `serve --workers 1` and `--workers 2` as processes (SQLite has one writer: PostgreSQL only), saturated
            # by the same clinicians' sessions, which live in the database.
            for n, workers in enumerate((1, 2)):
                with served(database_url, folder, workers) as base:
                    by_workers[workers] = _run_load({
                        "mode": "app", "base": base, "handles": handles, "seconds": seconds, "clients": CLINICIANS,
                        "slots": slots[(2 + n) * share:(3 + n) * share], "think_s": 0})
    return {"clinicians": CLINICIANS, "seconds": seconds, "paced": paced, "app": app, "bare": bare,
            "p95_ratio": round(app["p95_ms"] / bare["p95_ms"], 1) if bare["p95_ms"] else None,
            "rps_ratio": round(app["rps"] / bare["rps"], 3) if bare["rps"] else None,
            "serve_workers": by_workers or None}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.capture")
    parser.add_argument("mode", choices=("client",))
    parser.parse_args()
    print(json.dumps(_summary(asyncio.run(_load(json.loads(sys.stdin.read()))))))
