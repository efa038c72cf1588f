"""The `smart-app` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from smart_app.errors import SmartAppError

if TYPE_CHECKING:
    from smart_app.launch.people_check import PeopleReport


def _demo(args: argparse.Namespace) -> int:
    from smart_app.demo import run_demo

    run_demo(args.port, open_browser=not args.no_browser, data_dir=args.data_dir)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from smart_app.db import make_engine, require_current, session_factory
    from smart_app.errors import ConfigError
    from smart_app.launch.organizations import load_directory
    from smart_app.launch.purge import purge_expired
    from smart_app.log_redaction import install_log_redaction
    from smart_app.logs import configure_logging
    from smart_app.settings import load_settings, parse_forwarded_allow_ips
    from smart_app.warmup import prepare_process
    from smart_app.web.app import create_app

    settings = load_settings()
    trusted = (parse_forwarded_allow_ips(args.forwarded_allow_ips) if args.forwarded_allow_ips is not None
               else settings.forwarded_allow_ips)
    engine = make_engine(settings.database_url)
    if args.workers > 1 and engine.dialect.name != "postgresql":
        raise ConfigError("Several workers need PostgreSQL: SQLite has one writer, so they would queue behind it.",
                          "Run `serve` without --workers on SQLite, or set SMART_APP_DATABASE_URL=postgresql://...")
    require_current(engine)
    print(purge_expired(session_factory(engine)).sentence(), flush=True)
    organizations = load_directory(settings.launch_dir)
    # Without named proxies, X-Forwarded-* is ignored: the client address is the connection's.
    proxy_headers, allow_ips = bool(trusted), list(trusted) or None
    if args.workers > 1:
        engine.dispose()
        # Each worker process builds its own app from the environment (its own pool, its own warm-up).
        os.environ["SMART_APP_FORWARDED_ALLOW_IPS"] = ",".join(trusted)
        uvicorn.run("smart_app.web.factory:create_app_from_env", factory=True, workers=args.workers,
                    host=args.host, port=args.port, timeout_graceful_shutdown=args.graceful_seconds,
                    proxy_headers=proxy_headers, forwarded_allow_ips=allow_ips)
        return 0
    app = create_app(settings, organizations, engine)
    prepare_process(org.rule_set for org in organizations)
    config = uvicorn.Config(app, host=args.host, port=args.port, timeout_graceful_shutdown=args.graceful_seconds,
                            proxy_headers=proxy_headers, forwarded_allow_ips=allow_ips)
    configure_logging(settings)
    install_log_redaction()
    uvicorn.Server(config).run()
    return 0


def _purge(args: argparse.Namespace) -> int:
    from smart_app.db import make_engine, require_current, session_factory
    from smart_app.launch.purge import purge_expired
    from smart_app.settings import load_settings

    engine = make_engine(load_settings(need_secret=False).database_url)
    require_current(engine)
    print(purge_expired(session_factory(engine)).sentence())
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from smart_app.billing.worker import WorkerOptions, run_worker
    from smart_app.db import make_engine, require_current
    from smart_app.logs import configure_logging
    from smart_app.services import build_context
    from smart_app.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    engine = make_engine(settings.database_url)
    require_current(engine)
    options = WorkerOptions(interval=args.interval, lease_seconds=args.lease_seconds,
                            rollup_source=args.rollup_source, month_end=not args.no_month_end)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        app = build_context(settings, engine)
        try:
            await run_worker(app, options, stop)
        finally:
            await app.http.aclose()

    asyncio.run(go())
    engine.dispose()
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from smart_app.paths import data_path
    from smart_app.sandbox import SandboxClient, SandboxConfig, create_app

    base_url = args.base_url or f"http://localhost:{args.port}"
    clients = [SandboxClient(client_id=args.client_id, redirect_uris=args.redirect_uri,
                             auth_method="private_key_jwt" if args.jwks_url else "public", jwks_url=args.jwks_url)
               ] if args.client_id and args.redirect_uri else []
    database = str(args.data_dir / "sandbox.db") if args.data_dir else None
    config = SandboxConfig(base_url=base_url.rstrip("/"), fixtures_dir=args.fixtures or data_path("fixtures"),
                           database=database, clients=clients, app_launch_url=args.app_launch_url,
                           open=args.open, latency_ms=args.latency_ms, profile=args.profile)
    print(f"Sandbox EHR FHIR base: {config.base_url}/fhir  (patients: {config.base_url}/ehr/)")
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from smart_app.db import current_revision, make_engine, upgrade
    from smart_app.settings import load_settings

    engine = make_engine(load_settings(need_secret=False).database_url)
    upgrade(engine)
    print(f"Database is at migration {current_revision(engine)}.")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from smart_app.crypto import TokenBox
    from smart_app.db import make_engine, require_current, session_factory, transaction
    from smart_app.launch.keys import generate_key, published_keys, rotate_keys
    from smart_app.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    box = TokenBox(settings.secret_key)
    with transaction(session_factory(engine)) as db:
        if args.keys_command == "generate":
            row = generate_key(db, box, args.alg)
            print(f"Generated {row.alg} key {row.kid}; it signs from now on.")
        elif args.keys_command == "rotate":
            row = rotate_keys(db, box, args.alg, timedelta(days=args.overlap_days))
            print(f"New current key {row.kid}; older keys stay published for {args.overlap_days} days.")
        for key in published_keys(db):
            state = ("current" if key.retired_at is None
                     else f"retired, published until {key.expires_at:%Y-%m-%d %H:%M} UTC")
            print(f"{key.kid}\t{key.alg}\t{state}")
    print(f"JWKS URL to register with EHRs: {settings.base_url}/.well-known/jwks.json")
    return 0


def _org(args: argparse.Namespace) -> int:
    import asyncio
    import shutil

    from smart_app.billing.plan import describe_plan, plan_for
    from smart_app.billing.pricing import organization_pricing
    from smart_app.db import make_engine, require_current, session_factory, transaction
    from smart_app.errors import ConfigError
    from smart_app.launch.live_check import LiveReport, live_check
    from smart_app.launch.org_check import check_organization
    from smart_app.launch.organizations import (
        get_organization,
        list_organizations,
        load_directory,
        load_organization_file,
        save_organizations,
    )
    from smart_app.launch.people_check import people_report
    from smart_app.paths import data_path
    from smart_app.services import build_context
    from smart_app.settings import load_settings

    live = args.org_command == "check" and args.live
    # Only the live check opens the app's signing key, which needs the secret key.
    settings = load_settings(need_secret=live)
    engine = make_engine(settings.database_url)
    require_current(engine)
    sessions = session_factory(engine)
    if args.org_command == "add":
        org = load_organization_file(args.file)
        organization_pricing(org)  # refuses a bad [medicare_rates] table before the file is installed
        target = (settings.launch_dir or data_path("launch")) / f"{org.id}.toml"
        if target.resolve() != args.file.resolve():
            shutil.copyfile(args.file, target)
        with transaction(sessions) as db:
            save_organizations(db, [org])
        print(f"Installed {org.name} ({org.id}) for the EHR at {org.issuer}. Next: smart-app org check {org.id}")
        print(f"Launch URL to register with the EHR: {settings.base_url}/launch/{org.id}")
        return 0
    if args.org_command == "list":
        with transaction(sessions) as db:
            stored = {o.id: o for o in list_organizations(db)}
        files = {o.id: o for o in load_directory(settings.launch_dir)}
        for org_id in sorted(stored.keys() | files.keys()):
            org = stored.get(org_id) or files[org_id]
            where = "database and file" if org_id in stored and org_id in files else (
                "database only" if org_id in stored else "file only (loaded at next start)")
            print(f"{org.id}\t{org.name}\t{org.issuer}\t{org.client_auth}\t{where}")
        return 0
    with transaction(sessions) as db:
        found = get_organization(db, args.org_id)
    found = found or next((o for o in load_directory(settings.launch_dir) if o.id == args.org_id), None)
    if found is None:
        raise ConfigError(f"No organization {args.org_id!r}.", "Run `smart-app org list` to see the installed ones.")
    org = found
    writeback = org.extra.get("writeback")

    async def run() -> tuple[list, list[str], PeopleReport, LiveReport | None]:
        context = build_context(settings, engine)
        try:
            checks, caps = await check_organization(context.http, org)
            # The live check first, so the people check's cached token cannot stand in for a real one.
            report = await live_check(context.launch, org) if live else None
            people = await people_report(context.launch, org)
        finally:
            await context.http.aclose()
        if caps is None:
            return checks, ["unknown until the EHR's CapabilityStatement can be read"], people, report
        return checks, describe_plan(plan_for(caps, writeback)), people, report

    checks, plan_lines, people, report = asyncio.run(run())
    for check in checks:
        mark = "ok " if check.ok else ("MISSING" if check.blocking else "note")
        print(f"[{mark}] {check.text}" + ("" if check.ok else f"\n        {check.fix}"))
    print("Write-back plan (from the CapabilityStatement and the file's [writeback] table):")
    for line in plan_lines:
        print(f"  - {line}")
    print_people(people)
    if report is not None:
        print("Live check (a real backend token with the app's key, and one FHIR read with it):")
        for check in report.checks:
            mark = "ok " if check.ok else ("FAILED" if check.blocking else "note")
            print(f"[{mark}] {check.text}" + ("" if check.ok else f"\n        {check.fix}"))
    blocking = [c for c in checks if not c.ok and c.blocking]
    print("Ready to launch." if not blocking else f"{len(blocking)} requirement(s) missing before anyone can launch.")
    if report is not None and not report.ok:
        print("The live check failed: the month-end jobs (rollup from the EHR, write-back) will fail the same way "
              "until it is fixed.")
    return 1 if blocking or (report is not None and not report.ok) else 0


def print_people(report: PeopleReport) -> None:
    """How each practitioner the EHR lists maps onto the app's roles, and who does not map."""
    print("People the EHR lists, and their roles in the app (mappings and seeds of the organization file, grants):")
    if report.problem:
        print(f"  could not list them: {report.problem}")
        return
    for person in report.people:
        codes = "; ".join(c.describe() for c in person.codes) or "no role codes"
        time = person.roles.time_role.value if person.roles.time_role else "no time role"
        print(f"  - {person.name} ({person.reference}): {codes} -> {person.roles.label}; {time} "
              f"[{person.roles.basis.value}]")
    if report.note:
        print(f"  note: {report.note.strip()}")
    if report.unmapped:
        print(f"Not mapped ({len(report.unmapped)}): they can open the app and read, not record time. Map their codes "
              "in the organization file ([[role_map]]) or grant roles with `smart-app users grant`:")
        for person in report.unmapped:
            print(f"  - {person.name} ({person.reference})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="smart-app",
        description="Care-coordination time capture and care-management billing, as a SMART on "
                    "FHIR app launched from the EHR's patient chart.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the sandbox EHR and the app together on SQLite",
                          description="Start the local sandbox EHR and the app side by side on "
                                      "SQLite, print the chart URL to open, and serve until Ctrl+C.")
    demo.add_argument("--port", type=int, default=8000,
                      help="port of the app; the sandbox EHR uses the next one (default 8000)")
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser")
    demo.add_argument("--data-dir", type=Path, default=None,
                      help="folder for the demo's databases (default: SMART_APP_DATA_DIR or "
                           "~/.local/share/smart-app)")
    demo.set_defaults(func=_demo)

    serve = sub.add_parser("serve", help="run the app alone, configured from SMART_APP_* variables",
                           description="Serve the app with settings from the environment "
                                       "(SMART_APP_DATABASE_URL, SMART_APP_BASE_URL, "
                                       "SMART_APP_SECRET_KEY (required), SMART_APP_DATA_DIR, "
                                       "SMART_APP_LAUNCH_DIR, SMART_APP_FORWARDED_ALLOW_IPS). Run "
                                       "`smart-app db upgrade` first.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--forwarded-allow-ips", default=None, metavar="ADDRESSES",
                       help="proxies whose X-Forwarded-For/-Proto are believed, comma-separated addresses or "
                            "networks (default: SMART_APP_FORWARDED_ALLOW_IPS, else none)")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes sharing the port, each with its own database pool (default 1); "
                            "several need PostgreSQL: SQLite has one writer")
    serve.add_argument("--graceful-seconds", type=int, default=30,
                       help="on SIGTERM, how long requests in flight may finish (default 30)")
    serve.set_defaults(func=_serve)

    purge = sub.add_parser("purge", help="delete expired pending launches, ended sessions and stale EHR metadata",
                           description="Delete pending launches past their ten minutes, sessions that have ended "
                                       "and cached EHR discovery past its hour. `serve` and `demo` do it at "
                                       "start-up; schedule it (e.g. hourly) beside a long-running server.")
    purge.set_defaults(func=_purge)

    worker = sub.add_parser(
        "worker", help="run the background jobs: outbox delivery, month-end rollups, purge",
        description="Deliver every organization's outbox continuously, roll up each organization's previous month "
                    "once it is over (day 1 after 02:00 in the organization's timezone, once across all workers), "
                    "and purge expired launches and sessions hourly. Safe on several machines at once on "
                    "PostgreSQL. SIGTERM stops it after the batch in hand (exit 0).")
    worker.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="pause between passes (default 5)")
    worker.add_argument("--lease-seconds", type=int, default=60, metavar="SECONDS",
                        help="how long an outbox row stays reserved while it is sent (default 60)")
    worker.add_argument("--rollup-source", choices=("ehr", "cache"), default="ehr",
                        help="where the month-end rollup reads facts: the EHR (default) or the last saved read")
    worker.add_argument("--no-month-end", action="store_true", help="do not run month-end rollups here")
    worker.set_defaults(func=_worker)

    sandbox = sub.add_parser("sandbox", help="run the local sandbox EHR alone",
                             description="Serve the local SMART sandbox EHR (authorization server, "
                                         "FHIR R4 store seeded from fixtures, chart pages).")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind")
    sandbox.add_argument("--port", type=int, default=8001, help="port to bind (default 8001)")
    sandbox.add_argument("--base-url", help="public URL of the sandbox (default http://localhost:PORT)")
    sandbox.add_argument("--open", action="store_true",
                         help="serve the FHIR API without authorization, like open reference "
                              "servers, so another authorization server can sit in front")
    sandbox.add_argument("--client-id", help="register an app with this client id")
    sandbox.add_argument("--redirect-uri", action="append", default=[],
                         help="a redirect URI of that app (repeatable)")
    sandbox.add_argument("--jwks-url", help="register the app as a private_key_jwt client whose public keys are "
                                            "at this URL (the app's /.well-known/jwks.json); default: public client")
    sandbox.add_argument("--profile", choices=("open", "strict", "epic-like", "oracle-like"), default="open",
                         help="which EHR the sandbox behaves like (what it accepts from apps)")
    sandbox.add_argument("--app-launch-url", default="",
                         help="the app's launch URL, opened in the chart's iframe")
    sandbox.add_argument("--data-dir", type=Path, help="keep the sandbox's data here (default: memory)")
    sandbox.add_argument("--fixtures", type=Path, help="folder of fixture bundles to seed from")
    sandbox.add_argument("--latency-ms", type=int, default=0, help="delay every FHIR request")
    sandbox.set_defaults(func=_sandbox)

    db = sub.add_parser("db", help="database maintenance",
                        description="Database maintenance on SMART_APP_DATABASE_URL.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_upgrade = db_sub.add_parser("upgrade", help="apply every pending migration",
                                   description="Apply every pending Alembic migration.")
    db_upgrade.set_defaults(func=_db_upgrade)

    org = sub.add_parser("org", help="install organizations and check their EHRs",
                         description="Organizations are files in launch/ (one per EHR installation), "
                                     "mirrored in the database.")
    org_sub = org.add_subparsers(dest="org_command", required=True, metavar="ACTION")
    org_add = org_sub.add_parser("add", help="install an organization from its TOML file",
                                 description="Validate an organization file, copy it into the launch folder "
                                             "and save it in the database.")
    org_add.add_argument("file", type=Path, help="the organization's TOML file")
    org_add.set_defaults(func=_org)
    org_list = org_sub.add_parser("list", help="list installed organizations",
                                  description="List organizations in the database and the launch folder.")
    org_list.set_defaults(func=_org)
    org_check = org_sub.add_parser("check", help="check what the organization's EHR offers",
                                   description="Fetch the EHR's discovery documents and report, in plain words, "
                                               "what is missing before anyone launches (exit 1 if blocking).")
    org_check.add_argument("org_id", help="the organization id")
    org_check.add_argument("--live", action="store_true",
                           help="also request a real SMART Backend Services token with the app's key and make one "
                                "FHIR read with it, saying which step failed (needs SMART_APP_SECRET_KEY)")
    org_check.set_defaults(func=_org)

    keys = sub.add_parser("keys", help="the app's signing keys for private_key_jwt client authentication",
                          description="Manage the keys the app signs client assertions with (SMART "
                                      "confidential asymmetric clients). EHRs fetch the public half "
                                      "from /.well-known/jwks.json.")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for name, text in (("generate", "create a new current key"),
                       ("rotate", "create a new current key and retire the others after an overlap"),
                       ("list", "list the published keys")):
        action = keys_sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if name != "list":
            action.add_argument("--alg", choices=("RS384", "ES384"), default="RS384",
                                help="signature algorithm (default RS384)")
        if name == "rotate":
            action.add_argument("--overlap-days", type=int, default=7,
                                help="days both keys stay published (default 7)")
        action.set_defaults(func=_keys)

    from smart_app.access.command import register as register_users
    from smart_app.billing.exports_command import register as register_exports
    from smart_app.billing.outbox_command import register as register_outbox
    from smart_app.billing.rollup_command import register as register_rollup
    from smart_app.ledger.audit_command import register as register_audit
    from smart_app.rules.command import register as register_rules

    register_rules(sub)
    register_users(sub)
    register_audit(sub)
    register_outbox(sub)
    register_rollup(sub)
    register_exports(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; errors the user can act on print as one message, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SmartAppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"what to do: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
