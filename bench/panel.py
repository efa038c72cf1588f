"""Benchmark 5, the panel page: `GET /panel` for an organization-month of 5,000 enrolled patients, through the
app over HTTP with the launch session's bearer handle, timed by the client (p50/p95 over 50 requests after a
warm-up) and by the server (ASGI middleware).

Data: 5,000 directory rows, a month_status snapshot each (a mix of eligible lists, some empty), and about
three time entries each, written in bulk into the current month of the sandbox organization the session
belongs to.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from bench import data
from bench.common import percentile
from bench.stack import new_browser, page_handle, running_stack
from smart_app.db import make_engine
from tests.stack import sign_in


def run(database_url: str, folder: Path, *, quick: bool, patients: int = 5000, requests: int = 50) -> dict:
    with running_stack(database_url, folder) as stack:
        org = stack.organization
        month = dt.datetime.now(ZoneInfo(org.timezone)).strftime("%Y-%m")
        engine = make_engine(database_url)
        try:
            data.seed_patients(engine, patients, month, org_id=org.id, facts=False, snapshots=True)
            data.seed_entries(engine, patients, 3 * patients, month, org_id=org.id, seed=11)
        finally:
            engine.dispose()
        with new_browser() as browser:
            # The practice's biller, who sees every patient of the organization (a care manager sees their own).
            page = sign_in(browser, stack, "pr-biller", next_path="/panel")
            headers = {"Authorization": f"Bearer {page_handle(page.text)}"}
            for _ in range(3):
                browser.get(f"{stack.app_url}/panel", headers=headers).raise_for_status()
            stack.timer.clear()
            times = []
            for _ in range(10 if quick else requests):
                started = time.perf_counter()
                answer = browser.get(f"{stack.app_url}/panel", headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                answer.raise_for_status()
            rows = answer.text.count("<tr")
        server = [seconds * 1000 for _, path, _, seconds in stack.timer.records if path == "/panel"]
    return {"patients": patients, "requests": len(times), "html_rows": rows,
            "p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1),
            "server_p95_ms": round(percentile(server, 95), 1)}
