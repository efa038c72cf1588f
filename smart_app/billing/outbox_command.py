"""`smart-app outbox`: deliver the write-back outbox to an organization's EHR, and show where it stands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from smart_app.errors import ConfigError, SessionExpired

if TYPE_CHECKING:
    from smart_app.launch.organizations import Organization
    from smart_app.services import AppContext

EXIT_OK = 0
EXIT_STOPPED = 1  # --once and the EHR refused the app's authorization


def _month(value: str) -> str:
    from smart_app.ledger.months import InvalidMonth, Month

    try:
        return Month.parse(value).key
    except InvalidMonth as exc:  # argparse turns this into a usage message
        raise argparse.ArgumentTypeError(f"{value!r} is not a month; write YYYY-MM") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `outbox run` and `outbox status` to the command line."""
    parser = subparsers.add_parser(
        "outbox", help="deliver approved claims and their resources to the EHR; show what is pending",
        description="The write-back outbox on SMART_APP_DATABASE_URL: every resource the app sends to an "
                    "organization's EHR, delivered exactly once, retried with backoff when the EHR is down.")
    sub = parser.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    run = sub.add_parser(
        "run", help="send due rows to the organization's EHR (until Ctrl+C, or --once)",
        description="Send the organization's due outbox rows to its EHR at the organization's issuer, with a "
                    "SMART Backend Services token (or none when the organization file says writeback_open = "
                    "true, for open FHIR servers). Several workers may run at once: each row is leased by one.")
    run.add_argument("--org", required=True, metavar="ORG_ID", help="the organization id")
    run.add_argument("--once", action="store_true", help="one pass over the due rows, then exit")
    run.add_argument("--lease-seconds", type=int, default=60, metavar="SECONDS",
                     help="how long a row stays reserved for this worker while it sends it (default 60); a "
                          "worker that dies releases its rows to the others after this long")
    run.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                     help="pause between passes (default 5)")
    run.set_defaults(outbox_handler=_run)
    status = sub.add_parser("status", help="rows per status, and what failed with what to fix",
                            description="Count the organization's outbox rows per status and list the failed "
                                        "ones with the EHR's reason and what to fix.")
    status.add_argument("--org", required=True, metavar="ORG_ID", help="the organization id")
    status.add_argument("--month", type=_month, metavar="YYYY-MM", help="only this month")
    status.set_defaults(outbox_handler=_status)
    parser.set_defaults(func=run_command)


def _organization(app: AppContext, org_id: str) -> Organization:
    from smart_app.db import transaction
    from smart_app.launch.organizations import get_organization

    with transaction(app.sessions) as db:
        org = get_organization(db, org_id)
    if org is None:
        raise ConfigError(f"No organization {org_id!r}.", "Run `smart-app org list` to see the installed ones.")
    return org


async def _pass(app: AppContext, org: Organization, lease_seconds: int) -> str:
    """One delivery pass; a line saying what it did."""
    from smart_app.billing.delivery import deliver_pass, report_line
    from smart_app.errors import EhrError

    try:
        return report_line(await deliver_pass(app, org, lease_seconds=lease_seconds))
    except EhrError as exc:
        return f"Not sent: {exc.message} {exc.hint}"


def _run(args: argparse.Namespace, app: AppContext) -> int:
    org = _organization(app, args.org)

    async def loop() -> int:
        try:
            while True:
                try:
                    line = await _pass(app, org, args.lease_seconds)
                except SessionExpired as exc:
                    print(f"The EHR refused the app's authorization: {exc.message} {exc.hint}", file=sys.stderr)
                    if args.once:
                        return EXIT_STOPPED
                else:
                    print(f"{org.id}: {line}", flush=True)
                if args.once:
                    return EXIT_OK
                await asyncio.sleep(max(args.interval, 0.1))
        finally:
            await app.http.aclose()

    return asyncio.run(loop())


def _status(args: argparse.Namespace, app: AppContext) -> int:
    from smart_app.billing.outbox import outbox_rows, outbox_summary
    from smart_app.db import transaction
    from smart_app.statuses import OutboxStatus

    org = _organization(app, args.org)
    with transaction(app.sessions) as db:
        counts = outbox_summary(db, org.id, args.month)
        failed = outbox_rows(db, org.id, month=args.month, status=OutboxStatus.FAILED)
    where = f" in {args.month}" if args.month else ""
    print(f"Outbox of {org.name}{where}: " + ", ".join(f"{counts[s]} {s}" for s in OutboxStatus) + ".")
    for row in failed:
        print(f"  failed {row.resource_type} ({row.purpose}), row {row.id}, {row.attempts} attempt(s):\n"
              f"    {row.last_error}")
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed `outbox` command on the configured database."""
    from smart_app.db import make_engine, require_current
    from smart_app.services import build_context
    from smart_app.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        require_current(engine)
        app = build_context(settings, engine)
        try:
            status: int = args.outbox_handler(args, app)
            return status
        finally:
            if not app.http.is_closed:
                asyncio.run(app.http.aclose())
    finally:
        engine.dispose()
