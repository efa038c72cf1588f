"""The `audit` command: `verify` re-checks the whole hash chain, `tail` prints the latest events."""

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
    tail = sub.add_parser("tail", help="print the latest events (time, actor, action, subject)",
                          description="Print the latest audit events, oldest first.")
    tail.add_argument("-n", type=int, default=20, metavar="N", help="how many events (default 20)")
    tail.add_argument("--organization", metavar="ORG_ID", help="only this organization's events")
    tail.set_defaults(audit_handler=_tail)
    parser.set_defaults(func=run)


def _verify(args: argparse.Namespace, session: Session) -> int:
    from smart_app.ledger.audit import verify_chain

    report = verify_chain(session, args.organization, anchor=args.anchor)
    if report.ok:
        line = f"Audit chain intact: {report.rows_checked} events, last hash {report.last_hash}"
        if report.organization_events is not None:
            line += f" ({report.organization_events} of organization {args.organization})"
        print(line + ".")
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
    print(f"Audit chain BROKEN: {count} in {report.rows_checked} events{where}.")
    return EXIT_BROKEN


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
    """Run a parsed `audit` command in one read-only transaction on the configured database."""
    from smart_app.db import make_engine, require_current, session_factory
    from smart_app.settings import load_settings

    engine = make_engine(load_settings().database_url)
    try:
        require_current(engine)
        # The chain is walked by one statement, so it sees one consistent state while others append; on
        # PostgreSQL that statement is a server-side cursor, which lives inside a transaction.
        with session_factory(engine)() as session, session.begin():
            status: int = args.audit_handler(args, session)
            return status
    finally:
        engine.dispose()
