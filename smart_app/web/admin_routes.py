"""The administrator's page of users and roles (`/admin/users`) and its API: grant and revoke app and time roles."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.access.grants import Grant, grant_role, list_grants, revoke_role
from smart_app.access.roles import AppRole, Assignment, Roles, TimeRole, resolve_roles
from smart_app.db import transaction
from smart_app.launch.organizations import Organization
from smart_app.launch.sessions import SeenUser, seen_users
from smart_app.web.api import parse
from smart_app.web.api_models import _Body
from smart_app.web.authorization import principal
from smart_app.web.session_transport import csrf_token
from smart_app.web.templating import TEMPLATES, ctx


class RoleChange(_Body):
    """Grant or revoke one role of one EHR user."""

    user: str = Field(min_length=3, max_length=500, examples=["Practitioner/123"])
    role: str = Field(min_length=3, max_length=60, examples=["biller", "time:care-manager"])
    user_name: str = Field(default="", max_length=200)
    note: str = Field(default="", max_length=500)


@dataclass(frozen=True)
class PersonRow:
    """One person on the roles page: who, their roles now, and why."""

    user: str
    name: str
    roles: Roles
    codes: str
    seen: str


def _people(seen: list[SeenUser], grants: list[Grant], org: Organization) -> list[PersonRow]:
    """Everyone the page lists: people who opened the app, and people granted or seeded roles before that."""
    seeds = org.role_assignments
    granted: dict[str, list[Assignment]] = {}
    for g in grants:
        granted.setdefault(g.user, []).append(Assignment(
            g.user, frozenset({AppRole(g.role)}) if g.kind == "app" else frozenset(),
            TimeRole(g.role) if g.kind == "time" else None))
    names = {g.user: g.user_name for g in grants if g.user_name}
    people: dict[str, PersonRow] = {}
    for person in seen:
        roles = resolve_roles(person.user, person.role_codes, org.role_map, seeds + tuple(granted.get(person.user, ())),
                              org.billing_practitioner)
        people[person.user] = PersonRow(person.user, person.name or names.get(person.user) or person.user, roles,
                                        "; ".join(c.describe() for c in person.role_codes) or "none",
                                        f"{person.last_seen:%Y-%m-%d %H:%M} UTC")
    for user in [*(a.user for a in seeds), *granted]:
        if user not in people:
            roles = resolve_roles(user, (), org.role_map, seeds + tuple(granted.get(user, ())),
                                  org.billing_practitioner)
            people[user] = PersonRow(user, names.get(user) or user, roles, "not yet seen", "never")
    return sorted(people.values(), key=lambda p: p.name.casefold())


def users_page(request: Request) -> Response:
    app, who = ctx(request), principal(request)
    org = who.organization
    with transaction(app.sessions) as db:
        grants = list_grants(db, org.id)
        seen = seen_users(db, org.id)
    return TEMPLATES.TemplateResponse(request, "admin_users.html", {
        "org": org, "who": who, "handle": who.handle, "csrf": csrf_token(app.settings, who.session.id_hash),
        "grants": grants, "seeds": org.role_assignments, "mappings": org.role_map,
        "people": _people(seen, grants, org),
        "app_roles": list(AppRole), "time_roles": list(TimeRole)})


async def role_grant(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, RoleChange)

    def grant() -> Grant:
        with transaction(ctx(request).sessions) as db:
            return grant_role(db, who.organization.id, body.user, body.role, by=who.user or who.name,
                              user_name=body.user_name, note=body.note)

    done = await run_in_threadpool(grant)
    return JSONResponse({"grant": {"id": done.id, "user": done.user, "kind": done.kind, "role": done.role},
                         "message": f"{done.user_name or done.user} now holds the {done.role} "
                                    f"{'time ' if done.kind == 'time' else ''}role."}, status_code=201)


async def role_revoke(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, RoleChange)

    def revoke() -> Grant:
        with transaction(ctx(request).sessions) as db:
            return revoke_role(db, who.organization.id, body.user, body.role, by=who.user or who.name)

    done = await run_in_threadpool(revoke)
    return JSONResponse({"message": f"The {done.role} role of {done.user_name or done.user} was revoked."})


def routes() -> list[Route]:
    """The administrator's routes."""
    return [
        Route("/admin/users", users_page, methods=["GET", "POST"]),
        Route("/api/v1/admin/roles", role_grant, methods=["POST"]),
        Route("/api/v1/admin/roles/revoke", role_revoke, methods=["POST"]),
    ]
