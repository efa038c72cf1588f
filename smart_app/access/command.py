"""`smart-app users grant | revoke | list`: roles granted in the app, from the server's shell (audited)."""

from __future__ import annotations

import argparse
import getpass

from smart_app.access.grants import grant_role, list_grants, revoke_role


def _operator() -> str:
    """Who runs the command, as the audit log names them."""
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator"


def _run(args: argparse.Namespace) -> int:
    from smart_app.db import make_engine, require_current, session_factory, transaction
    from smart_app.errors import ConfigError
    from smart_app.launch.organizations import get_organization
    from smart_app.settings import load_settings

    engine = make_engine(load_settings().database_url)
    require_current(engine)
    with transaction(session_factory(engine)) as db:
        org = get_organization(db, args.org)
        if org is None:
            raise ConfigError(f"No organization {args.org!r} is installed.",
                              "Run `smart-app org list` to see the installed ones.")
        if args.users_command == "grant":
            grant = grant_role(db, org.id, args.user, args.role, by=_operator(), user_name=args.name or "",
                               note=args.note or "")
            print(f"{grant.user} holds the {grant.role} {'time ' if grant.kind == 'time' else ''}role in {org.name}.")
        elif args.users_command == "revoke":
            grant = revoke_role(db, org.id, args.user, args.role, by=_operator())
            print(f"Revoked the {grant.role} role of {grant.user} in {org.name}.")
        else:
            for seed in org.role_assignments:
                roles = ", ".join(sorted(r.value for r in seed.app_roles))
                time = f"; time {seed.time_role.value}" if seed.time_role else ""
                print(f"{seed.user}\t{roles}{time}\tseeded by the organization file")
            for grant in list_grants(db, org.id, include_revoked=args.all):
                state = "active" if grant.active else f"revoked {grant.revoked_at:%Y-%m-%d} by {grant.revoked_by}"
                print(f"{grant.user}\t{grant.kind}:{grant.role}\tgranted {grant.granted_at:%Y-%m-%d} by "
                      f"{grant.granted_by}\t{state}" + (f"\t{grant.user_name}" if grant.user_name else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `users` command to the CLI."""
    users = sub.add_parser("users", help="grant, revoke and list the app's roles per organization",
                           description="EHRs put no role in their tokens: the app keeps role assignments per "
                                       "organization. App roles: clinician, care-manager, biller, administrator. "
                                       "Time roles (how minutes count): clinical-staff, time:care-manager, "
                                       "billing-practitioner, psychiatric-consultant. Every change is audited.")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    for name, text in (("grant", "grant a role to an EHR user"), ("revoke", "revoke a granted role")):
        action = users_sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("--org", required=True, help="the organization id")
        action.add_argument("user", help='the EHR user as the EHR names them, e.g. "Practitioner/123"')
        action.add_argument("role", help="an app role, or a time role (time:care-manager for the care manager's)")
        if name == "grant":
            action.add_argument("--name", help="the person's name, for lists")
            action.add_argument("--note", help="why (kept with the grant)")
        action.set_defaults(func=_run)
    listing = users_sub.add_parser("list", help="list roles seeded and granted",
                                   description="List the roles seeded by the organization file and granted in the app.")
    listing.add_argument("--org", required=True, help="the organization id")
    listing.add_argument("--all", action="store_true", help="include revoked grants")
    listing.set_defaults(func=_run)
