"""`smart-app superbill` and `smart-app export`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from smart_app.billing.rollup_command import _month
from smart_app.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from smart_app.launch.organizations import Organization


def _context(org_id: str) -> tuple[sessionmaker[Session], Organization]:
    from smart_app.db import make_engine, require_current, session_factory, transaction
    from smart_app.launch.organizations import get_organization
    from smart_app.settings import load_settings

    engine = make_engine(load_settings(need_secret=False).database_url)
    require_current(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as db:
        org = get_organization(db, org_id)
    if org is None:
        raise ConfigError(f"No organization {org_id!r}.", "Run `smart-app org list` to see the installed ones.")
    return sessions, org


def _superbill(args: argparse.Namespace) -> int:
    from smart_app.billing.exports import record_export, render_superbill, superbill_claims
    from smart_app.db import transaction
    from smart_app.ledger.audit import command_line_actor

    sessions, org = _context(args.org)
    with transaction(sessions) as db:
        claims = superbill_claims(db, org, args.month, args.patient, args.include_proposed)
        record_export(db, org.id, by=command_line_actor(), what=f"superbill.{args.format}", month=args.month,
                      patients=[c.patient_id for c in claims])
    data = render_superbill(claims, org, args.month, args.format)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"Wrote the {args.format.upper()} superbill of {len(claims)} claim(s) to {args.out}.")
    return 0


def _export(args: argparse.Namespace) -> int:
    from smart_app.billing.exports import (
        export_bundle,
        export_ndjson,
        export_resources,
        history_bundle,
        record_export,
    )
    from smart_app.db import transaction
    from smart_app.ledger.audit import command_line_actor

    sessions, org = _context(args.org)
    count = 0
    patients: set[str] = set()
    versions: list[dict] = []
    with transaction(sessions) as db, (open(args.out, "w") if args.out else sys.stdout) as out:
        resources = export_resources(db, org.id, args.month, org.timezone, patients, versions)
        if args.format == "ndjson":
            for line in export_ndjson(resources):
                out.write(line)
                count += 1
        else:
            bundle = export_bundle(resources)
            count = len(bundle["entry"])
            json.dump(bundle, out, indent=1)
            out.write("\n")
    history = history_bundle(versions)
    if history is not None and args.history:
        args.history.parent.mkdir(parents=True, exist_ok=True)
        args.history.write_text(json.dumps(history, indent=1) + "\n")
    with transaction(sessions) as db:
        # Recorded once the file is written: a failed export took nothing out.
        record_export(db, org.id, by=command_line_actor(), what=f"fhir-{args.format}", month=args.month,
                      patients=patients)
    print(f"Exported {count} resource(s) for {args.month}, each once in its current state.", file=sys.stderr)
    if history is None:
        if args.history:
            print("No resource has had more than one version: no history Bundle written.", file=sys.stderr)
    elif args.history:
        print(f"Wrote {len(history['entry'])} version(s) of the resources that changed (a correction retired what "
              f"it replaced) as a history Bundle to {args.history}.", file=sys.stderr)
    else:
        changed = len({e["fullUrl"] for e in history["entry"]})
        print(f"{changed} resource(s) had earlier versions in the EHR (a correction retired them); add "
              "--history FILE to write every version as a history Bundle.", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `superbill` and `export` to the command line."""
    bill = subparsers.add_parser("superbill", help="write the month's superbill (HTML, PDF or CSV)",
                                 description="Write the chart-ready superbill of the month's approved claims, for "
                                             "one patient or the whole organization. Rates are national "
                                             "non-facility estimates from the rule set.")
    bill.add_argument("--org", required=True, help="organization id")
    bill.add_argument("--month", required=True, type=_month, help="the service month, YYYY-MM")
    bill.add_argument("--patient", help="one patient id (default: every patient)")
    bill.add_argument("--format", choices=("html", "pdf", "csv"), default="pdf", help="output format (default pdf)")
    bill.add_argument("--out", required=True, type=Path, help="file to write")
    bill.add_argument("--include-proposed", action="store_true",
                      help="also include claims not yet approved (a draft)")
    bill.set_defaults(func=_superbill)

    export = subparsers.add_parser("export", help="export everything written for a month as FHIR",
                                   description="Write every resource the app wrote (or could not write) to the "
                                               "EHR for the month, once each in its current state and tagged with "
                                               "its delivery status, as a FHIR collection Bundle or NDJSON (one "
                                               "resource a line); --history adds the earlier versions.")
    export.add_argument("--org", required=True, help="organization id")
    export.add_argument("--month", required=True, type=_month, help="the service month, YYYY-MM")
    export.add_argument("--format", choices=("bundle", "ndjson"), default="bundle", help="output format")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    export.add_argument("--history", type=Path, metavar="FILE",
                        help="also write every version the EHR accepted of the resources that changed (a claim "
                             "a correction retired) to FILE, as a FHIR history Bundle")
    export.set_defaults(func=_export)
