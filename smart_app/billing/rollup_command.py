"""`smart-app rollup`: evaluate a month for an organization, with a progress bar on the terminal."""

from __future__ import annotations

import argparse
import asyncio
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


def _month(value: str) -> str:
    from smart_app.ledger.months import InvalidMonth, Month

    try:
        return Month.parse(value).key
    except InvalidMonth as exc:  # argparse turns this into a usage message
        raise argparse.ArgumentTypeError(f"{value!r} is not a month; write YYYY-MM") from exc


def _run(args: argparse.Namespace) -> int:
    from smart_app.billing.rollup import run_rollup
    from smart_app.db import make_engine, require_current, transaction
    from smart_app.launch.organizations import get_organization
    from smart_app.ledger.audit import command_line_actor
    from smart_app.services import build_context
    from smart_app.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.database_url)
    require_current(engine)

    async def go() -> int:
        app = build_context(settings, engine)
        try:
            with transaction(app.sessions) as db:
                org = get_organization(db, args.org)
            if org is None:
                raise ConfigError(f"No organization {args.org!r}.",
                                  "Run `smart-app org list` to see the installed ones.")
            report = await run_rollup(app, org, args.month, source=args.source, progress=ProgressBar(sys.stderr),
                                      by=command_line_actor())
        finally:
            await app.http.aclose()
        print(f"Rollup of {args.month} for {org.name}: {report.patients} patients, {report.billable} with billable "
              f"codes, {report.new_versions} new claim versions, {report.unchanged} unchanged.")
        for patient_id, message in report.errors:
            print(f"  patient {patient_id}: {message}", file=sys.stderr)
        return 1 if report.errors else 0

    return asyncio.run(go())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `rollup` to the command line."""
    parser = subparsers.add_parser(
        "rollup", help="evaluate a month and propose claims for the biller",
        description="Evaluate every patient with time, consent or a checked status in the month, with facts "
                    "read fresh from the EHR (SMART Backend Services) or from the last saved read, and store "
                    "each changed claim as a new version for biller review. Safe to re-run.")
    parser.add_argument("--org", required=True, help="organization id")
    parser.add_argument("--month", required=True, type=_month, help="the service month, YYYY-MM")
    parser.add_argument("--source", choices=("ehr", "cache"), default="ehr",
                        help="where facts come from: the EHR (default) or the last saved read")
    parser.set_defaults(func=_run)
