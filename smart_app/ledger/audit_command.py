"""The `audit` command: `verify` re-checks the hash chain and the ledger rows it covers, `tail` prints the latest
events, `baseline` covers (once) the rows written before the ledger was in the chain."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

EXIT_OK = 0
EXIT_BROKEN = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `audit` command (with `verify` and `tail`) to the app's CLI."""
    parser = subparsers.add_parser(
        "audit", help="the hash-chained audit log: verify it, show the latest events",
        description="The append-only, hash-chained audit log on SMART_APP_DATABASE_URL.")
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = sub.add_parser(
        "verify", help="re-check every event's hash and link; exit 1 if anything was changed",
        description="Walk the whole audit chain, recompute every hash and link, and print each problem. "
                    "Exits 0 when the chain is intact, 1 when it is not. Events removed from the end cannot be "
                    "seen by the chain alone: keep the last hash printed here and pass it back with --anchor.")
    verify.add_argument("--anchor", metavar="HASH",
                        help="a hash printed by an earlier run; the chain must still contain it")
    verify.add_argument("--organization", metavar="ORG_ID",
                        help="also count this organization's events (the whole chain is always verified)")
    verify.set_defaults(audit_handler=_verify)
    baseline = sub.add_parser(
        "baseline", help="once, after upgrading: put the ledger rows written before into the chain",
        description="Record in the audit chain the time entries, timers, consents, attestations, rating scales and "
                    "claim versions written before this version of the app covered them, so `verify` can check "
                    "them from now on. Runs once; later, rows missing from the chain were added outside the app.")
    baseline.set_defaults(audit_handler=_baseline)
    tail = sub.add_parser("tail", help="print the latest events (time, actor, action, subject)",
                          description="Print the latest audit events, oldest first.")
    tail.add_argument("-n", type=int, default=20, metavar="N", help="how many events (default 20)")
    tail.add_argument("--organization", metavar="ORG_ID", help="only this organization's events")
    tail.set_defaults(audit_handler=_tail)
    parser.set_defaults(func=run)


def _verify(args: argparse.Namespace, session: Session) -> int:
    from smart_app.ledger.coverage import verify

    report = verify(session, args.organization, anchor=args.anchor)
    if report.ok:
        line = f"Audit chain intact: {report.rows_checked} events, last hash {report.last_hash}"
        if report.organization_events is not None:
            line += f" ({report.organization_events} of organization {args.organization})"
        print(f"{line}; {report.ledger_rows_checked} ledger rows match it.")
        if report.anchor_seq is not None:
            print(f"The kept hash is event {report.anchor_seq}.")
        return EXIT_OK
    for problem in report.problems:
        print(str(problem))
    hidden = report.problem_count - len(report.problems)
    if hidden:
        print(f"... and {hidden} more problems.")
    where = f"; first bad event {report.first_bad_seq}" if report.first_bad_seq is not None else ""
    count = f"{report.problem_count} problem" + ("s" if report.problem_count != 1 else "")
    print(f"Checked {report.ledger_rows_checked} ledger rows against the chain.")
    print(f"Audit chain BROKEN: {count} in {report.rows_checked} events{where}.")
    return EXIT_BROKEN


def _baseline(args: argparse.Namespace, session: Session) -> int:
    from smart_app.ledger.audit import command_line_actor
    from smart_app.ledger.coverage import baseline

    covered = baseline(session, command_line_actor())
    print(f"Baseline recorded: {covered} ledger rows written before are now in the audit chain.")
    return EXIT_OK


def _tail(args: argparse.Namespace, session: Session) -> int:
    from smart_app.ledger.audit import format_at, recent_events

    events = recent_events(session, args.n, args.organization)
    if not events:
        print("No audit events yet.")
    for event in events:
        org = f"  [{event.organization_id}]" if event.organization_id else ""
        print(f"{event.seq}  {format_at(event.at)}  {event.actor}  {event.action}  {event.subject}{org}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run a parsed `audit` command in one transaction on the configured database (only `baseline` writes)."""
    from smart_app.db import make_engine, require_current, session_factory
    from smart_app.settings import load_settings

    engine = make_engine(load_settings(need_secret=False).database_url)
    try:
        require_current(engine)
        # One transaction: `verify` reads the chain, the coverage records and the rows in one snapshot while others
        # append (on PostgreSQL its server-side cursors live inside a transaction too).
        with session_factory(engine)() as session, session.begin():
            status: int = args.audit_handler(args, session)
            return status
    finally:
        engine.dispose()
