"""Benchmark 1, launch to page: FHIR requests after the token, their wall time, and the app's own time.

The sandbox EHR and the app run on loopback under uvicorn (bench.stack). Each launch is what a person does:
open the chart, the iframe loads `/launch`, the redirects run through authorize to `/callback`, which renders
the patient page. Measured per launch:

* `fhir_after_token`: FHIR requests the sandbox logged after `POST /auth/token` (its request log), leaving out
  discovery (`/fhir/metadata`, `/.well-known/...`) and `/auth/...`.
* `fhir_wall_ms`: from the first of those requests leaving the app to the last answer arriving, timed by hooks
  on the app's own HTTP client (client side, so it includes loopback and the sandbox's queueing).
* `app_ms`: server time of `/launch` plus `/callback` (ASGI middleware around the app) minus the time the app
  spent waiting on the EHR during them (the union of its outgoing requests' intervals: discovery, token,
  JWKS, FHIR). What remains is the app's own work: database, crypto, mapping, rules, template.
* One round trip: the batch profile's `fhir_wall_ms` (median), i.e. one request from the app's own HTTP client at
  the same injected latency; the concurrency ratio is the epic-like profile's fhir_wall / that round trip.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import median, percentile
from bench.stack import BenchStack, new_browser, open_chart, running_stack

PATIENTS = ("ccm-two-chronic", "complex-ccm-high", "bhi-depression-phq9", "pcm-single-complex",
            "tcm-recent-discharge")
NOT_FHIR_DATA = ("/fhir/metadata", "/fhir/.well-known")


class OutboundLog:
    """httpx event hooks on the app's HTTP client: (url, start, end) of each request it sends."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float, float]] = []

    async def on_request(self, request: httpx.Request) -> None:
        request.extensions["bench_started"] = time.perf_counter()

    async def on_response(self, response: httpx.Response) -> None:
        started = response.request.extensions.get("bench_started", time.perf_counter())
        self.records.append((str(response.request.url), started, time.perf_counter()))

    def attach(self, client: httpx.AsyncClient) -> None:
        client.event_hooks["request"].append(self.on_request)
        client.event_hooks["response"].append(self.on_response)


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Total time covered by the intervals (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


@dataclass
class Launch:
    fhir_after_token: int
    fhir_wall_ms: float
    app_ms: float
    page_ms: float
    ehr_ms: float


def _is_fhir_data(path: str) -> bool:
    return path.startswith("/fhir") and not path.startswith(NOT_FHIR_DATA)


def one_launch(browser: httpx.Client, stack: BenchStack, outbound: OutboundLog, patient: str) -> Launch:
    stack.clear_sandbox_log(browser)
    stack.timer.clear()
    outbound.records.clear()
    page = open_chart(browser, stack, patient)
    if page.status_code != 200:
        raise RuntimeError(f"launch of {patient} answered {page.status_code}: {page.text[:300]}")
    log = stack.sandbox_log(browser)
    token_at = next((i for i, r in enumerate(log) if r["method"] == "POST" and r["path"] == "/auth/token"), None)
    if token_at is None:
        raise RuntimeError("the sandbox logged no token request")
    after = [r for r in log[token_at + 1:] if _is_fhir_data(r["path"].split("?")[0])]
    fhir_base = stack.sandbox_url + "/fhir"
    token_end = max((end for url, _, end in outbound.records if url.endswith("/auth/token")), default=0.0)
    data_calls = [(s, e) for url, s, e in outbound.records
                  if url.startswith(fhir_base) and s >= token_end
                  and not url.split("?")[0].startswith(tuple(stack.sandbox_url + p for p in NOT_FHIR_DATA))]
    wall = (max(e for _, e in data_calls) - min(s for s, _ in data_calls)) if data_calls else 0.0
    pages = sorted((start, start + seconds) for _, path, start, seconds in stack.timer.records
                   if path in ("/launch", "/callback"))
    page_total = union_seconds(pages)
    ehr = union_seconds([(max(s, start), min(e, stop)) for start, stop in pages for _, s, e in outbound.records
                         if s < stop and e > start])
    app = page_total - ehr
    return Launch(len(after), wall * 1000, app * 1000, page_total * 1000, ehr * 1000)


def run_profile(database_url: str, folder: Path, profile: str, launches: int, latency_ms: int,
                warmup: int = 3) -> dict:
    """`launches` sequential launches against a sandbox of this profile and latency; summary figures."""
    with running_stack(database_url, folder, latency_ms=latency_ms, profile=profile) as stack:
        outbound = OutboundLog()
        outbound.attach(stack.app.state.ctx.http)
        results: list[Launch] = []
        patients = itertools.cycle(PATIENTS)
        with new_browser() as browser:
            for _ in range(warmup):
                one_launch(browser, stack, outbound, next(patients))
            for _ in range(launches):
                results.append(one_launch(browser, stack, outbound, next(patients)))
    app = [r.app_ms for r in results]
    walls = [r.fhir_wall_ms for r in results]
    return {
        "profile": profile, "latency_ms": latency_ms, "launches": launches,
        "fhir_after_token_max": max(r.fhir_after_token for r in results),
        "fhir_after_token_median": median([r.fhir_after_token for r in results]),
        "fhir_wall_ms_median": round(median(walls), 1), "fhir_wall_ms_p95": round(percentile(walls, 95), 1),
        "app_ms_median": round(median(app), 1), "app_ms_p95": round(percentile(app, 95), 1),
        "page_ms_median": round(median([r.page_ms for r in results]), 1),
        "ehr_wait_ms_median": round(median([r.ehr_ms for r in results]), 1),
    }


def run(database_url: str, folder: Path, *, quick: bool, latency_ms: int = 100) -> dict:
    """Batch profile (`open`) and no-batch profile (`epic-like`) at the injected latency."""
    batch = run_profile(database_url, folder, "open", 30 if quick else 100, latency_ms)
    concurrent = run_profile(database_url, folder, "epic-like", 15 if quick else 30, latency_ms)
    # One round trip as the app sees it: its single batch request, same latency, same client, same loopback.
    rtt = batch["fhir_wall_ms_median"]
    return {"batch": batch, "concurrent": concurrent, "round_trip_ms": rtt,
            "concurrent_over_round_trip_median": round(concurrent["fhir_wall_ms_median"] / rtt, 2),
            "concurrent_over_round_trip_p95": round(concurrent["fhir_wall_ms_p95"] / rtt, 2)}
