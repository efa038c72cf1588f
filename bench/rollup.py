"""Benchmark 3, month-end rollup: wall time and peak memory of `run_rollup(source="cache")` over a synthetic
organization, against the lower bound of one bare SQL GROUP BY over the same entries, then again with the
entries doubled (memory must stay flat).

Each measurement runs in its own subprocess (`python -m bench.rollup child ...`), so its peak RSS
(`VmHWM` of /proc/self/status) is its own: interpreter and imports included, which the baseline
figure (RSS after imports and set-up, before the rollup) shows separately.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import data
from bench.common import ROOT, median
from smart_app.db import make_engine

LOWER_BOUND_SQL = ("SELECT patient_id, program, role, SUM(minutes) FROM time_entries "
                   "WHERE organization_id = :org AND month = :month GROUP BY patient_id, program, role")
# A second reference: every entry row of the month, as plain tuples of the columns a claim's evidence is
# built from. A claim cites each supporting entry (its id, performer, date, late flag), so no rollup that
# builds defensible claims can read less than this; the GROUP BY reads only sums.
ENTRY_SCAN_SQL = ("SELECT id, patient_id, performer, role, program, activity, starts_at, minutes, recorded_at, "
                  "corrects_id, kind, late, shared FROM time_entries WHERE organization_id = :org AND month = :month "
                  "ORDER BY patient_id, recorded_at, starts_at")


def _rss_mb() -> float:
    """This process's peak RSS so far (VmHWM). Not ru_maxrss: Linux carries that across exec, so a child
    started from a large parent would report the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_rollup(url: str, folder: str, org_id: str, month: str, profile_to: str | None,
                  run_id: str | None = None, start_at: float | None = None) -> dict:
    from smart_app.billing.rollup import run_rollup
    from smart_app.db import transaction
    from smart_app.launch.organizations import get_organization
    from smart_app.services import build_context
    from smart_app.settings import load_settings

    settings = load_settings(env={}, database_url=url, data_dir=Path(folder), secret_key="b" * 40)
    app = build_context(settings)
    with transaction(app.sessions) as db:
        org = get_organization(db, org_id)
    baseline = _rss_mb()

    async def go():  # noqa: ANN202
        return await run_rollup(app, org, month, source="cache", run_id=run_id)

    if start_at is not None:
        # Processes sharing a run start together, once each has paid its imports and set-up.
        time.sleep(max(0.0, start_at - time.time()))

    profiler = None
    if profile_to:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    report = asyncio.run(go())
    wall = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_to)
    asyncio.run(app.http.aclose())
    app.engine.dispose()
    return {"wall_s": wall, "ended_at": time.time(), "batches": report.batches,
            "peak_rss_mb": _rss_mb(), "baseline_rss_mb": baseline, "patients": report.patients,
            "new_versions": report.new_versions, "unchanged": report.unchanged, "billable": report.billable,
            "errors": len(report.errors), "first_error": report.errors[0] if report.errors else None}


def _timed_fetch(url: str, sql: str, org_id: str, month: str, repeat: int) -> tuple[float, int]:
    """Median wall time of running `sql` and fetching every row, and the number of rows."""
    engine = make_engine(url)
    times, rows = [], 0
    try:
        for _ in range(repeat):
            with engine.connect() as connection:
                started = time.perf_counter()
                rows = len(connection.execute(text(sql), {"org": org_id, "month": month}).all())
                times.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return median(times), rows


def _child_group_by(url: str, org_id: str, month: str, repeat: int = 3) -> dict:
    wall, rows = _timed_fetch(url, LOWER_BOUND_SQL, org_id, month, repeat)
    scan, scanned = _timed_fetch(url, ENTRY_SCAN_SQL, org_id, month, repeat)
    return {"wall_s": wall, "rows": rows, "entry_scan_s": scan, "entry_rows": scanned, "peak_rss_mb": _rss_mb()}


def _spawn(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.rollup", "child", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rollup child failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(url: str, folder: Path, month: str, profile_to: str | None = None) -> dict:
    bound = _spawn("group-by", url, str(folder), data.ORG_ID, month)
    rollup = _spawn("rollup", url, str(folder), data.ORG_ID, month, profile_to or "")
    return {"group_by_s": round(bound["wall_s"], 3), "group_by_rows": bound["rows"],
            "entry_scan_s": round(bound["entry_scan_s"], 3), "entry_rows": bound["entry_rows"],
            "ratio_to_scan": round(rollup["wall_s"] / bound["entry_scan_s"], 1),
            "rollup_s": round(rollup["wall_s"], 2), "ratio": round(rollup["wall_s"] / bound["wall_s"], 1),
            "peak_rss_mb": round(rollup["peak_rss_mb"], 1), "baseline_rss_mb": round(rollup["baseline_rss_mb"], 1),
            "patients": rollup["patients"], "billable": rollup["billable"], "new_versions": rollup["new_versions"],
            "errors": rollup["errors"], "first_error": rollup["first_error"]}


def _forget_claims(url: str) -> None:
    """Delete the claims (and their coverage and rollup runs), so the next rollup writes every version again."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_coverage WHERE table_name = 'claims'"))
            connection.execute(text("DELETE FROM claims"))
            connection.execute(text("DELETE FROM rollup_batches"))
    finally:
        engine.dispose()


def measure_shared(url: str, folder: Path, month: str, processes: int, settle_s: float = 8.0) -> dict:
    """The same rollup as `measure`'s, from scratch, by `processes` processes sharing one run's batches: wall
    time from their common start to the last one's end (imports and set-up before the start, as in `measure`)."""
    from smart_app.billing import batches
    from smart_app.billing.rollup import BATCH, _patients_query
    from smart_app.db import session_factory

    _forget_claims(url)
    engine = make_engine(url)
    try:
        run_id = batches.open_run(session_factory(engine), data.ORG_ID, month, _patients_query(data.ORG_ID, month),
                                  BATCH)
    finally:
        engine.dispose()
    start_at = time.time() + settle_s
    children = [subprocess.Popen([sys.executable, "-m", "bench.rollup", "child", "rollup", url, str(folder),
                                  data.ORG_ID, month, "", "--run", run_id, "--start-at", str(start_at)],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(processes)]
    results = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"rollup child failed ({child.returncode}): {err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {"processes": processes, "rollup_s": round(max(r["ended_at"] for r in results) - start_at, 2),
            "patients": sum(r["patients"] for r in results), "batches": [r["batches"] for r in results],
            "new_versions": sum(r["new_versions"] for r in results),
            "peak_rss_mb": [round(r["peak_rss_mb"], 1) for r in results],
            "errors": sum(r["errors"] for r in results)}


def run(url: str, folder: Path, *, quick: bool, profile_dir: Path | None = None) -> dict:
    """Seed the organization, measure, double the entries, measure again."""
    patients, entries = (2000, 100_000) if quick else (20_000, 1_000_000)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        data.seed_organization(engine)
        data.seed_patients(engine, patients, data.MONTH)
        data.seed_entries(engine, patients, entries, data.MONTH)
        seeded = time.perf_counter() - started
    finally:
        engine.dispose()
    one = measure(url, folder, data.MONTH, str(profile_dir / "rollup-1x.prof") if profile_dir else None)
    if make_url(url).get_backend_name() != "sqlite":
        # Two processes sharing the month (SQLite has one writer, so only here). The doubled run shows memory
        # stays flat; once (on SQLite) is enough and keeps `make bench` in time.
        shared = measure_shared(url, folder, data.MONTH, 2)
        return {"patients": patients, "entries": entries, "seed_s": round(seeded, 1), "x1": one, "x2": None,
                "memory_growth": None, "two_processes": shared}
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        data.double_entries(engine, data.MONTH)
        seeded += time.perf_counter() - started
    finally:
        engine.dispose()
    two = measure(url, folder, data.MONTH)
    return {"patients": patients, "entries": entries, "seed_s": round(seeded, 1), "x1": one, "x2": two,
            "memory_growth": round(two["peak_rss_mb"] / one["peak_rss_mb"], 2)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup")
    parser.add_argument("mode", choices=("child",))
    parser.add_argument("what", choices=("rollup", "group-by"))
    parser.add_argument("url")
    parser.add_argument("folder")
    parser.add_argument("org")
    parser.add_argument("month")
    parser.add_argument("profile_to", nargs="?", default="")
    parser.add_argument("--run", default=None)
    parser.add_argument("--start-at", type=float, default=None)
    args = parser.parse_args(argv)
    if args.what == "rollup":
        result = _child_rollup(args.url, args.folder, args.org, args.month, args.profile_to or None, args.run,
                               args.start_at)
    else:
        result = _child_group_by(args.url, args.org, args.month)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
