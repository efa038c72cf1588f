"""The roles part of an organization file: mappings of EHR codes and seeded assignments, validated."""

from __future__ import annotations

from collections.abc import Iterable

from smart_app.access.roles import AppRole, Assignment, CodeSource, RoleMapping, TimeRole
from smart_app.errors import ConfigError

_EXAMPLE_MAP = ('[[role_map]]\nsource = "practitioner-role"\n'
                'system = "urn:oid:1.2.840.114350.1.13.0.1.7.10.836982.1050"\ncode = "12"\n'
                'time_role = "care-manager"\napp_roles = ["clinician", "care-manager"]')
_USER_KINDS = ("Practitioner/", "PractitionerRole/", "Person/", "RelatedPerson/", "sub:")


def _choices(kind: type[AppRole] | type[TimeRole] | type[CodeSource]) -> str:
    return ", ".join(member.value for member in kind)


def _app_roles(value: object, where: str) -> frozenset[AppRole]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: app_roles must be a list of role names.",
                          f"Use some of: {_choices(AppRole)}.")
    try:
        return frozenset(AppRole(v) for v in value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}.", f"App roles are: {_choices(AppRole)}.") from exc


def _time_role(value: object, where: str) -> TimeRole | None:
    if value in (None, ""):
        return None
    try:
        return TimeRole(str(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: unknown time_role {value!r}.", f"Time roles are: {_choices(TimeRole)}.") from exc


def _tables(value: object, key: str, source: str) -> list[dict[str, object]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{source}: {key} must be a list of tables ([[{key}]]).", f"For example:\n{_EXAMPLE_MAP}")
    return value


def parse_role_map(value: object, source: str) -> tuple[RoleMapping, ...]:
    """The `[[role_map]]` tables of an organization file."""
    mappings = []
    for index, table in enumerate(_tables(value, "role_map", source), start=1):
        where = f"{source}: role_map #{index}"
        try:
            kind = CodeSource(str(table.get("source", "")))
        except ValueError as exc:
            raise ConfigError(f"{where}: unknown source {table.get('source')!r}.",
                              f"Sources are: {_choices(CodeSource)}.") from exc
        code = str(table.get("code") or "")
        if not code:
            raise ConfigError(f"{where}: code is missing.", f"For example:\n{_EXAMPLE_MAP}")
        system = str(table.get("system") or "")
        if kind is CodeSource.LAUNCH and not system:
            raise ConfigError(f"{where}: a launch mapping names the launch parameter as its system.",
                              'For example: source = "launch", system = "app_role", code = "biller".')
        app_roles, time_role = _app_roles(table.get("app_roles"), where), _time_role(table.get("time_role"), where)
        if not app_roles and time_role is None:
            raise ConfigError(f"{where}: the mapping gives no role.", "Name app_roles, a time_role, or both.")
        mappings.append(RoleMapping(kind, system, code, app_roles, time_role))
    return tuple(mappings)


def parse_assignments(value: object, source: str) -> tuple[Assignment, ...]:
    """The `[[role_assignment]]` tables of an organization file: roles seeded for named users."""
    found = []
    for index, table in enumerate(_tables(value, "role_assignment", source), start=1):
        where = f"{source}: role_assignment #{index}"
        user = str(table.get("user") or "")
        if not user.startswith(_USER_KINDS):
            raise ConfigError(f"{where}: user {user!r} is not an EHR user reference.",
                              'Write it as the EHR names the user, e.g. "Practitioner/123" or "Person/456".')
        app_roles, time_role = _app_roles(table.get("app_roles"), where), _time_role(table.get("time_role"), where)
        if not app_roles and time_role is None:
            raise ConfigError(f"{where}: the assignment gives no role.", "Name app_roles, a time_role, or both.")
        found.append(Assignment(user, app_roles, time_role))
    return tuple(found)


def mappings_json(mappings: Iterable[RoleMapping]) -> list[dict[str, object]]:
    """The mappings as the organization file writes them (for the database copy)."""
    return [{"source": m.source.value, "system": m.system, "code": m.code,
             "app_roles": sorted(r.value for r in m.app_roles), "time_role": m.time_role.value if m.time_role else ""}
            for m in mappings]


def assignments_json(assignments: Iterable[Assignment]) -> list[dict[str, object]]:
    """The seeded assignments as the organization file writes them."""
    return [{"user": a.user, "app_roles": sorted(r.value for r in a.app_roles),
             "time_role": a.time_role.value if a.time_role else ""} for a in assignments]
