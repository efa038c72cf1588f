"""Roles granted and revoked by an administrator, per organization; every change is audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from smart_app.access.models import RoleGrantRow
from smart_app.access.roles import AppRole, Assignment, TimeRole
from smart_app.db import utcnow
from smart_app.errors import SmartAppError
from smart_app.ledger.audit import ROLE_GRANTED, ROLE_REVOKED, record_event

APP, TIME = "app", "time"
_APP_ROLES = frozenset(r.value for r in AppRole)
_TIME_ROLES = frozenset(r.value for r in TimeRole)


class GrantError(SmartAppError):
    """A grant or revocation that cannot be done as asked."""

    title = "The role was not changed"
    status_code = 422


@dataclass(frozen=True)
class Grant:
    """One active or revoked grant, as lists show it."""

    id: str
    user: str
    user_name: str
    kind: str
    role: str
    granted_by: str
    granted_at: datetime
    note: str
    revoked_by: str | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the grant still holds."""
        return self.revoked_at is None


def _grant(row: RoleGrantRow) -> Grant:
    return Grant(row.id, row.user_ref, row.user_name, row.kind, row.role, row.granted_by, row.granted_at, row.note,
                 row.revoked_by, row.revoked_at)


def parse_role(name: str) -> tuple[str, str]:
    """(`app` or `time`, role) for a role name; GrantError naming the choices otherwise.

    `care-manager` is both an app role and a time role: the plain name grants the app role and
    `time:care-manager` the time role; the other time roles may be named plainly.
    """
    prefix, _, bare = name.strip().rpartition(":")
    if prefix == TIME and bare in _TIME_ROLES:
        return TIME, bare
    if prefix in ("", APP) and bare in _APP_ROLES:
        return APP, bare
    if prefix == "" and bare in _TIME_ROLES:
        return TIME, bare
    raise GrantError(f"{name!r} is not a role.",
                     f"App roles: {', '.join(AppRole)}. Time roles: {', '.join(TimeRole)} "
                     "(write time:care-manager for the care manager's time role).")


def grant_role(db: Session, organization_id: str, user: str, role_name: str, *, by: str, user_name: str = "",
               note: str = "") -> Grant:
    """Grant a role (audited); a new time role replaces the person's previous one."""
    if not user or not user.strip():
        raise GrantError("No user was named.", 'Name the EHR user, e.g. "Practitioner/123".')
    kind, role = parse_role(role_name)
    existing = db.scalars(select(RoleGrantRow).where(
        RoleGrantRow.organization_id == organization_id, RoleGrantRow.user_ref == user,
        RoleGrantRow.kind == kind, RoleGrantRow.revoked_at.is_(None))).all()
    same = next((r for r in existing if r.role == role), None)
    if same is not None:
        return _grant(same)
    now = utcnow()
    for row in existing if kind == TIME else ():
        row.revoked_at, row.revoked_by = now, by
        record_event(db, actor=by, action=ROLE_REVOKED, subject=user, organization_id=organization_id,
                     detail={"grant": row.id, "kind": kind, "role": row.role, "replaced_by": role})
    db.flush()
    row = RoleGrantRow(id=str(uuid.uuid4()), organization_id=organization_id, user_ref=user,
                       user_name=user_name[:200], kind=kind, role=role, granted_by=by, granted_at=now, note=note)
    db.add(row)
    db.flush()
    record_event(db, actor=by, action=ROLE_GRANTED, subject=user, organization_id=organization_id,
                 detail={"grant": row.id, "kind": kind, "role": role})
    return _grant(row)


def revoke_role(db: Session, organization_id: str, user: str, role_name: str, *, by: str) -> Grant:
    """Revoke a person's active grant of a role (audited); GrantError when they hold none."""
    kind, role = parse_role(role_name)
    now = utcnow()
    row = db.scalar(select(RoleGrantRow).where(
        RoleGrantRow.organization_id == organization_id, RoleGrantRow.user_ref == user, RoleGrantRow.kind == kind,
        RoleGrantRow.role == role, RoleGrantRow.revoked_at.is_(None)))
    if row is None:
        raise GrantError(f"{user} holds no granted {role} role in this organization.",
                         "Roles seeded by the organization file are changed in that file; list the roles with "
                         "`smart-app users list`.")
    db.execute(update(RoleGrantRow).where(RoleGrantRow.id == row.id).values(revoked_at=now, revoked_by=by))
    record_event(db, actor=by, action=ROLE_REVOKED, subject=user, organization_id=organization_id,
                 detail={"grant": row.id, "kind": kind, "role": role})
    return _grant(row)


def active_assignments(db: Session, organization_id: str, user: str | None) -> tuple[Assignment, ...]:
    """The person's granted roles as assignments (one per grant), for `resolve_roles`."""
    if not user:
        return ()
    rows = db.scalars(select(RoleGrantRow).where(
        RoleGrantRow.organization_id == organization_id, RoleGrantRow.user_ref == user,
        RoleGrantRow.revoked_at.is_(None))).all()
    return tuple(Assignment(user, frozenset({AppRole(r.role)}) if r.kind == APP else frozenset(),
                            TimeRole(r.role) if r.kind == TIME else None) for r in rows)


def list_grants(db: Session, organization_id: str, *, include_revoked: bool = False) -> list[Grant]:
    """Every grant of the organization, newest first."""
    query = select(RoleGrantRow).where(RoleGrantRow.organization_id == organization_id)
    if not include_revoked:
        query = query.where(RoleGrantRow.revoked_at.is_(None))
    return [_grant(r) for r in db.scalars(query.order_by(RoleGrantRow.granted_at.desc(), RoleGrantRow.id))]


def holders(db: Session, organization_id: str, role: AppRole, seeded: Iterable[Assignment] = ()) -> list[str]:
    """Names (or references) of the people who hold an app role, for 'ask ... to grant it'."""
    names = {r.user_name or r.user_ref for r in db.scalars(select(RoleGrantRow).where(
        RoleGrantRow.organization_id == organization_id, RoleGrantRow.kind == APP,
        RoleGrantRow.role == role.value, RoleGrantRow.revoked_at.is_(None)))}
    names |= {a.user for a in seeded if role in a.app_roles}
    return sorted(names)


def people_with_time_role(db: Session, organization_id: str, role: TimeRole,
                          seeded: Iterable[Assignment] = ()) -> set[str]:
    """References of the people granted (or seeded with) a time role."""
    found = set(db.scalars(select(RoleGrantRow.user_ref).where(
        RoleGrantRow.organization_id == organization_id, RoleGrantRow.kind == TIME,
        RoleGrantRow.role == role.value, RoleGrantRow.revoked_at.is_(None))))
    return found | {a.user for a in seeded if a.time_role is role}
