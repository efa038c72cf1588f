"""`smart-app rollup`: evaluate a month for an organization, with a progress bar on the terminal."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from typing import TextIO

from smart_app.errors import ConfigError

BAR_WIDTH = 30


class ProgressBar:
    """A one-line progress bar on a terminal; occasional plain lines when output is not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_tenth = -1

    def __call__(self, done: int, total: int, patient_id: str) -> None:
        total = max(total, done, 1)
        if self.tty:
            filled = BAR_WIDTH * done // total
            self.stream.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} patients")
            self.stream.flush()
            if done == total:
                self.stream.write("\n")
        elif (tenth := 10 * done // total) != self.last_tenth:
            self.last_tenth = tenth
            self.stream.write(f"{done}/{total} patients\n")


def _workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of workers from 1 to 64")
    return int(value)


def _month(value: str) -> str:
    from smart_app.ledger.months import InvalidMonth, Month

    try:
        return Month.parse(value).key
    except InvalidMonth as exc:  # argparse turns this into a usage message
        raise argparse.ArgumentTypeError(f"{value!r} is not a month; write YYYY-MM") from exc


def _run(args: argparse.Namespace) -> int:
    from smart_app.billing import batches
    from smart_app.billing.rollup import BATCH, _patients_query, run_rollup
    from smart_app.db import in_thread, make_engine, require_current, transaction
    from smart_app.launch.organizations import get_organization
    from smart_app.ledger.audit import command_line_actor
    from smart_app.services import build_context
    from smart_app.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.database_url)
    if args.workers > 1 and engine.dialect.name != "postgresql":
        raise ConfigError("SQLite runs the rollup in one process: it has one writer, so more workers would only wait.",
                          "Run without --workers, or use PostgreSQL (SMART_APP_DATABASE_URL=postgresql://...).")
    require_current(engine)

    async def go() -> int:
        app = build_context(settings, engine)
        helpers: list[subprocess.Popen[bytes]] = []
        try:
            with transaction(app.sessions) as db:
                org = get_organization(db, args.org)
            if org is None:
                raise ConfigError(f"No organization {args.org!r}.",
                                  "Run `smart-app org list` to see the installed ones.")
            run_id = args.run or await in_thread(batches.open_run, app.sessions, org.id, args.month,
                                                 _patients_query(org.id, args.month), BATCH)
            # The other workers are this command again, joined to the same run: each claims its own batches.
            helpers = [subprocess.Popen([sys.executable, "-m", "smart_app.cli", "rollup", "--org", args.org,
                                         "--month", args.month, "--source", args.source, "--run", run_id])
                       for _ in range(args.workers - 1)]
            report = await run_rollup(app, org, args.month, source=args.source, by=command_line_actor(),
                                      run_id=run_id, progress=None if args.run else ProgressBar(sys.stderr))
            codes = await asyncio.gather(*(asyncio.to_thread(h.wait) for h in helpers))
            failed_helpers = sum(code != 0 for code in codes)
            totals = await in_thread(batches.run_totals, app.sessions, run_id)
        finally:
            for helper in helpers:
                if helper.poll() is None:
                    helper.terminate()
            await app.http.aclose()
        for patient_id, message in report.errors:
            print(f"  patient {patient_id}: {message}", file=sys.stderr)
        if args.run:  # a helper of another `rollup --workers`: its parent reports the run
            return 1 if report.errors else 0
        still = "" if totals.done == totals.batches else (
            f" ({totals.batches - totals.done} of {totals.batches} batches still held by another process)")
        print(f"Rollup of {args.month} for {org.name}: {totals.patients} patients, {totals.billable} with billable "
              f"codes, {totals.new_versions} new claim versions, {totals.unchanged} unchanged{still}.")
        return 1 if totals.errors or failed_helpers else 0

    return asyncio.run(go())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `rollup` to the command line."""
    parser = subparsers.add_parser(
        "rollup", help="evaluate a month and propose claims for the biller",
        description="Evaluate every patient with time, consent or a checked status in the month, with facts "
                    "read fresh from the EHR (SMART Backend Services) or from the last saved read, and store "
                    "each changed claim as a new version for biller review. Safe to re-run, and safe to run on several "
                    "machines at once on PostgreSQL: the processes claim the month's batches from the database, so "
                    "each patient is evaluated once. SQLite is single-process.")
    parser.add_argument("--org", required=True, help="organization id")
    parser.add_argument("--month", required=True, type=_month, help="the service month, YYYY-MM")
    parser.add_argument("--source", choices=("ehr", "cache"), default="ehr",
                        help="where facts come from: the EHR (default) or the last saved read")
    parser.add_argument("--workers", type=_workers, default=1,
                        help="processes sharing the month's batches (PostgreSQL only; SQLite runs one process). "
                             "Several machines running the same command share the work the same way")
    # A helper started by `--workers N` joins its parent's run; not for people.
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.set_defaults(func=_run)
