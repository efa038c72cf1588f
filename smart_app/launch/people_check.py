"""For `smart-app org check`: how each person the EHR lists maps onto the app's roles, and who does not map."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from smart_app.access.grants import list_grants
from smart_app.access.roles import AppRole, Assignment, RoleCode, Roles, TimeRole, resolve_roles
from smart_app.db import transaction
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.identity import role_codes, user_reference
from smart_app.ehr.names import human_name
from smart_app.errors import EhrError, SmartAppError
from smart_app.launch.backend import backend_token
from smart_app.launch.flow import LaunchDeps
from smart_app.launch.organizations import Organization

# A directory larger than this is summarised: the check is for an administrator's eyes, not a sync job.
MAX_PEOPLE = 500


@dataclass(frozen=True)
class PersonMapping:
    """One person the EHR lists: name, the codes it exposes, and the roles the app gives them."""

    reference: str
    name: str
    codes: tuple[RoleCode, ...]
    roles: Roles

    @property
    def mapped(self) -> bool:
        """Whether the app can place this person: a role in the app, and a time role if they record time."""
        records_time = self.roles.has_any((AppRole.CLINICIAN, AppRole.CARE_MANAGER))
        return bool(self.roles.app_roles) and (self.roles.time_role is not None or not records_time)


@dataclass(frozen=True)
class PeopleReport:
    """Everyone the check could see, or why it could not look."""

    people: tuple[PersonMapping, ...]
    problem: str | None = None
    note: str | None = None

    @property
    def unmapped(self) -> tuple[PersonMapping, ...]:
        """People the app cannot place: they may open the app and read, but not record time."""
        return tuple(p for p in self.people if not p.mapped)


def _granted(factory: sessionmaker[Session], org: Organization) -> dict[str, list[Assignment]]:
    with transaction(factory) as db:
        grants = list_grants(db, org.id)
    found: dict[str, list[Assignment]] = {}
    for g in grants:
        found.setdefault(g.user, []).append(Assignment(
            g.user, frozenset({AppRole(g.role)}) if g.kind == "app" else frozenset(),
            TimeRole(g.role) if g.kind == "time" else None))
    return found


async def people_report(deps: LaunchDeps, org: Organization) -> PeopleReport:
    """Read the EHR's Practitioners (and PractitionerRoles where it has them) with a backend token; map each."""
    try:
        token = await backend_token(deps, org)
        client = FhirClient(deps.http, org.issuer, token)
        practitioners = await client.search("Practitioner", {"_count": "200"})
    except SmartAppError as exc:
        return PeopleReport((), problem=f"{exc.message} {exc.hint}".strip())
    note = None
    try:
        practitioner_roles = await client.search("PractitionerRole", {"_count": "200"})
    except EhrError as exc:
        if exc.http_status not in (403, 404, 405):
            raise
        # Oracle Health has no PractitionerRole: qualifications and grants are all there is.
        practitioner_roles, note = [], f"The EHR gives no PractitionerRole ({exc.message})."
    by_person: dict[str, list[dict]] = {}
    for role in practitioner_roles:
        ref = user_reference(str((role.get("practitioner") or {}).get("reference") or ""))
        if ref:
            by_person.setdefault(ref, []).append(role)
    granted = _granted(deps.sessions, org)
    people = []
    for resource in practitioners[:MAX_PEOPLE]:
        ref = f"Practitioner/{resource.get('id')}"
        codes = role_codes(resource, by_person.get(ref, []))
        roles = resolve_roles(ref, codes, org.role_map, org.role_assignments + tuple(granted.get(ref, ())),
                              org.billing_practitioner)
        people.append(PersonMapping(ref, human_name(resource) or ref, codes, roles))
    if len(practitioners) > MAX_PEOPLE:
        note = (note or "") + f" Only the first {MAX_PEOPLE} of {len(practitioners)} practitioners are shown."
    return PeopleReport(tuple(sorted(people, key=lambda p: p.name.casefold())), note=note)
