"""Benchmark 6, the audit chain over a large ledger: wall time and peak memory of `smart-app audit verify` (the
chain, then every ledger row against it) and of the one-time `audit baseline` that puts a synthetic ledger in
the chain.

The ledger is built as the rollup benchmark's (bulk-inserted entries of one organization-month, 300,000 entries;
100,000 with `--quick`), covered by a baseline
(500 rows per event); verify then recomputes every event's hash and every row's digest. Each step runs in its
own subprocess, so its peak RSS is its own; flat memory means verify's peak stays near the RSS after imports.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench import data
from bench.common import ROOT
from bench.rollup import _rss_mb
from smart_app.db import make_engine


def _child(url: str, what: str) -> dict:
    from smart_app.db import session_factory
    from smart_app.ledger.coverage import baseline, verify

    engine = make_engine(url)
    before = _rss_mb()
    started = time.perf_counter()
    with session_factory(engine)() as db, db.begin():
        if what == "baseline":
            result: dict = {"rows": baseline(db, "bench")}
        else:
            report = verify(db)
            result = {"ok": report.ok, "events": report.rows_checked, "rows": report.ledger_rows_checked,
                      "problems": report.problem_count}
    wall = time.perf_counter() - started
    engine.dispose()
    return {**result, "wall_s": wall, "peak_rss_mb": _rss_mb(), "baseline_rss_mb": before}


def _spawn(what: str, url: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.audit", "child", what, url], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"audit child failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(url: str, folder: Path, *, quick: bool) -> dict:
    """Seed the ledger, cover it with a baseline, verify it."""
    # A third of the rollup's full size keeps `make bench` near its budget; verify's cost is linear in the rows.
    patients, entries = (2000, 100_000) if quick else (6000, 300_000)
    engine = make_engine(url)
    try:
        data.seed_organization(engine)
        data.seed_patients(engine, patients, data.MONTH, facts=False)
        data.seed_entries(engine, patients, entries, data.MONTH)
    finally:
        engine.dispose()
    covered = _spawn("baseline", url)
    checked = _spawn("verify", url)
    if not checked["ok"] or checked["rows"] != entries:
        raise RuntimeError(f"verify did not find the seeded ledger intact: {checked}")
    return {"entries": entries, "baseline_s": round(covered["wall_s"], 1), "verify_s": round(checked["wall_s"], 1),
            "events": checked["events"], "rows_per_s": round(entries / checked["wall_s"]),
            "verify_peak_rss_mb": round(checked["peak_rss_mb"], 1),
            "verify_baseline_rss_mb": round(checked["baseline_rss_mb"], 1),
            "baseline_peak_rss_mb": round(covered["peak_rss_mb"], 1)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    parser.add_argument("mode", choices=("child",))
    parser.add_argument("what", choices=("baseline", "verify"))
    parser.add_argument("url")
    args = parser.parse_args(argv)
    print(json.dumps(_child(args.url, args.what)))


if __name__ == "__main__":
    main(sys.argv[1:])
