"""Run the benchmarks: `python -m bench.run [--quick] [--only launch,capture,rollup,writeback,panel,audit]
[--backends sqlite,postgresql] [--profile]`; prints the table and writes bench/results/*.json."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import audit, capture, launch, panel, rollup, writeback
from bench.common import BACKENDS, fresh_database, git_revision, postgres_problem, scratch_dir
from bench.report import Row, info_row, limit_row, rows_json, table, write

# Run order: the latency benchmarks first, on every backend, and the month-end rollup last. The rollup writes
# millions of rows; the disk and PostgreSQL's checkpointer are busy with them for a while afterwards, which
# showed in whatever latency was measured next.
BENCHES = ("launch", "capture", "panel", "writeback", "rollup", "audit")


def launch_rows(backend: str, r: dict) -> list[Row]:
    b, c = r["batch"], r["concurrent"]
    lat = f"{b['latency_ms']} ms EHR latency"
    return [
        limit_row("launch: FHIR requests after token, batch", backend, b["fhir_after_token_max"], "req", 2,
                  inclusive=True, note=f"max over {b['launches']} launches"),
        info_row("launch: FHIR requests after token, epic-like", backend, c["fhir_after_token_max"], "req",
                 "no batch: concurrent reads"),
        info_row("launch: one round trip (batch request)", backend, r["round_trip_ms"], "ms", lat),
        limit_row("launch: concurrent reads wall / round trip", backend, r["concurrent_over_round_trip_median"], "x",
                  1.5, inclusive=True, note=f"median; p95 {r['concurrent_over_round_trip_p95']}x; {lat}"),
        limit_row("launch: app time p95, batch", backend, b["app_ms_p95"], "ms", 50,
                  note=f"median {b['app_ms_median']} ms; page {b['page_ms_median']} ms incl. EHR"),
        limit_row("launch: app time p95, epic-like", backend, c["app_ms_p95"], "ms", 50,
                  note=f"median {c['app_ms_median']} ms over {c['launches']} launches"),
    ]


def capture_rows(backend: str, r: dict) -> list[Row]:
    paced, a, bare = r["paced"], r["app"], r["bare"]

    def errs(run: dict) -> str:
        return f"; {run['errors']} errors {run['error_statuses']}" if run["errors"] else ""

    return [
        limit_row("capture: app p95, 50 clinicians paced", backend, paced["p95_ms"], "ms", 50,
                  note=f"p50 {paced['p50_ms']} / p99 {paced['p99_ms']} ms; {paced['rps']} req/s; "
                       f"{paced['think_s']} s mean pause{errs(paced)}"),
        info_row("capture: app p95, 50 clinicians saturating", backend, a["p95_ms"], "ms",
                 f"p50 {a['p50_ms']} / p99 {a['p99_ms']} ms; {a['requests']} req in {a['seconds']} s{errs(a)}"),
        info_row("capture: app requests/s, saturating", backend, a["rps"], "req/s"),
        info_row("capture: bare endpoint p95", backend, bare["p95_ms"], "ms",
                 f"p50 {bare['p50_ms']} / p99 {bare['p99_ms']} ms"),
        info_row("capture: bare endpoint requests/s", backend, bare["rps"], "req/s"),
        info_row("capture: app/bare p95 ratio", backend, r["p95_ratio"], "x",
                 f"throughput ratio app/bare {r['rps_ratio']}"),
        *_serve_workers_rows(backend, r.get("serve_workers")),
    ]


def _serve_workers_rows(backend: str, by_workers: dict | None) -> list[Row]:
    """`serve --workers 1` vs `--workers 2` as processes, saturated (PostgreSQL only)."""
    if not by_workers:
        return []
    one, two = by_workers.get("1") or by_workers.get(1), by_workers.get("2") or by_workers.get(2)
    return [
        info_row("capture: serve --workers 1, requests/s saturating", backend, one["rps"], "req/s",
                 f"p95 {one['p95_ms']} ms; {one['errors']} errors"),
        info_row("capture: serve --workers 2, requests/s saturating", backend, two["rps"], "req/s",
                 f"p95 {two['p95_ms']} ms; {two['errors']} errors"),
        info_row("capture: workers 2/1 throughput", backend, round(two["rps"] / one["rps"], 2) if one["rps"] else None,
                 "x", "2 cores shared by both workers, PostgreSQL and the load generator"),
    ]


def rollup_rows(backend: str, r: dict) -> list[Row]:
    one, two = r["x1"], r["x2"]
    scale = f"{r['patients']:,} patients, {r['entries']:,} entries"
    rows = [
        info_row("rollup: wall time", backend, one["rollup_s"], "s", scale),
        info_row("rollup: lower bound, bare GROUP BY", backend, one["group_by_s"], "s", f"{one['group_by_rows']} rows"),
        limit_row("rollup: wall / lower bound", backend, one["ratio"], "x", 2, inclusive=True),
        info_row("rollup: reading every entry row", backend, one["entry_scan_s"], "s",
                 f"{one['entry_rows']:,} rows, {round(one['entry_scan_s'] / one['group_by_s'], 1)}x the GROUP BY; "
                 f"rollup / this {one['ratio_to_scan']}x"),
        limit_row("rollup: peak RSS", backend, one["peak_rss_mb"], "MB", 300,
                  note=f"RSS after imports {one['baseline_rss_mb']} MB"),
    ]
    if two is not None:
        rows += [
            info_row("rollup: wall time, entries x2", backend, two["rollup_s"], "s",
                     f"lower bound {two['group_by_s']} s, ratio {two['ratio']}x"),
            limit_row("rollup: peak RSS, entries x2", backend, two["peak_rss_mb"], "MB", 300),
            limit_row("rollup: peak RSS growth x2/x1", backend, r["memory_growth"], "x", 1.1, inclusive=True,
                      note="flat = within 10%"),
        ]
    shared = r.get("two_processes")
    if shared is not None:
        rows += [
            info_row("rollup: wall time, 2 processes sharing the month", backend, shared["rollup_s"], "s",
                     f"batches per process {shared['batches']}, peak RSS per process {shared['peak_rss_mb']} MB, "
                     f"{shared['new_versions']:,} new versions"),
            info_row("rollup: speed-up 1 -> 2 processes", backend, round(one["rollup_s"] / shared["rollup_s"], 2),
                     "x", "2 cores shared with PostgreSQL itself"),
        ]
    errors = one["errors"] + (two["errors"] if two else 0) + (shared["errors"] if shared else 0)
    if errors:
        rows.append(info_row("rollup: patients with errors", backend, errors, "",
                             str(one["first_error"] or (two or {}).get("first_error"))))
    return rows


def writeback_rows(backend: str, r: dict) -> list[Row]:
    rows = []
    for size, fig in r["by_bundle_size"].items():
        note = f"{fig['claims']} claims ({fig['rows']} rows) in {fig['seconds']} s"
        if fig["failed"]:
            note += f"; {fig['failed']} rows not delivered"
        rows.append(info_row(f"write-back: claims/s, {size} rows per Bundle", backend, fig["claims_per_s"],
                             "claims/s", note))
    return rows


def panel_rows(backend: str, r: dict) -> list[Row]:
    return [limit_row(f"panel: p95 ({r['patients']:,} patients)", backend, r["p95_ms"], "ms", 200,
                      note=f"p50 {r['p50_ms']} ms; server p95 {r['server_p95_ms']} ms; {r['requests']} requests")]


def audit_rows(backend: str, r: dict) -> list[Row]:
    scale = f"{r['entries']:,} entries, {r['events']:,} events"
    return [
        info_row("audit: verify wall time", backend, r["verify_s"], "s", f"{scale}; {r['rows_per_s']:,} rows/s"),
        limit_row("audit: verify peak RSS", backend, r["verify_peak_rss_mb"], "MB", 300,
                  note=f"RSS after imports {r['verify_baseline_rss_mb']} MB"),
        info_row("audit: baseline wall time", backend, r["baseline_s"], "s",
                 f"once per database; peak RSS {r['baseline_peak_rss_mb']} MB"),
    ]


RUNNERS: dict[str, tuple[Callable[..., dict], Callable[[str, dict], list[Row]]]] = {
    "launch": (launch.run, launch_rows),
    "capture": (capture.run, capture_rows),
    "rollup": (rollup.run, rollup_rows),
    "writeback": (writeback.run, writeback_rows),
    "panel": (panel.run, panel_rows),
    "audit": (audit.run, audit_rows),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs (a smoke check)")
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgresql")
    parser.add_argument("--profile", action="store_true",
                        help="also write a cProfile of the first rollup to bench/results/rollup-<backend>.prof")
    args = parser.parse_args(argv)
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in only if b not in BENCHES] + [b for b in backends if b not in BACKENDS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    revision = git_revision()
    started = time.perf_counter()
    results: dict[str, dict[str, dict]] = {}
    rows: list[Row] = []
    errors: list[str] = []
    if "postgresql" in backends and (why := postgres_problem()):
        errors.append(f"postgresql skipped: {why}")
        print(f"!! PostgreSQL unreachable, skipped: {why}", file=sys.stderr)
        backends = [b for b in backends if b != "postgresql"]
    for name in sorted(only, key=BENCHES.index):
        for backend in backends:
            runner, to_rows = RUNNERS[name]
            print(f".. {name} on {backend}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                with scratch_dir() as folder, fresh_database(backend, folder, name) as url:
                    options: dict = {"quick": args.quick}
                    if name == "rollup" and args.profile:
                        options["profile_dir"] = Path(__file__).resolve().parent / "results"
                    result = runner(url, folder, **options)
                result["elapsed_s"] = round(time.perf_counter() - t0, 1)
                results.setdefault(name, {})[backend] = result
                rows += to_rows(backend, result)
                print(f"   done in {result['elapsed_s']} s", file=sys.stderr, flush=True)
            except Exception as exc:  # noqa: BLE001 - one benchmark failing must not lose the others
                detail = "".join(traceback.format_exception(exc))[-2000:]
                errors.append(f"{name} on {backend}: {type(exc).__name__}: {exc}")
                print(f"!! {name} on {backend} failed:\n{detail}", file=sys.stderr, flush=True)
                rows.append(Row(f"{name}: failed", backend, None, "", passed=False,
                                note=f"{type(exc).__name__}: {exc}"))
    order = {name: i for i, name in enumerate(BENCHES)}
    rows.sort(key=lambda r: (order.get(r.metric.split(":")[0].replace("write-back", "writeback"), 99),
                             r.metric.split(":")[0], backends.index(r.backend) if r.backend in backends else 9))
    elapsed = round(time.perf_counter() - started, 1)
    text = table(rows)
    print()
    print(text)
    print(f"\n{sum(r.passed is True for r in rows)} pass, {sum(r.passed is False for r in rows)} miss; "
          f"{elapsed} s; revision {revision}{' (quick)' if args.quick else ''}")
    document = {"revision": revision, "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "quick": args.quick, "backends": backends, "benchmarks": only, "elapsed_s": elapsed,
                "errors": errors, "rows": rows_json(rows), "results": results}
    path = write(document, revision)
    print(f"written: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
