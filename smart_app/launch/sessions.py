"""Launched sessions: find one by the browser's handle, and keep its access token fresh."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from smart_app.access.roles import CodeSource, RoleCode
from smart_app.crypto import hash_handle
from smart_app.db import in_thread, transaction, utcnow
from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.identity import user_reference
from smart_app.errors import LaunchError, SessionExpired
from smart_app.launch.flow import LaunchDeps, client_identity
from smart_app.launch.models import AppSession, LaunchKind
from smart_app.launch.organizations import Organization, get_organization
from smart_app.launch.token_client import request_token

# Refresh a little before expiry so a request never starts with a token about to lapse.
REFRESH_MARGIN = timedelta(seconds=60)

RELAUNCH = "Relaunch the app from the patient's chart in the EHR."


@dataclass(frozen=True)
class ActiveSession:
    """A session as the web layer sees it: who, which patient, and a usable access token."""

    id_hash: str
    organization_id: str
    fhir_base: str
    kind: LaunchKind
    patient_id: str | None
    encounter_id: str | None
    fhir_user: str | None
    user_name: str | None
    # What the EHR exposed about the user that may map to roles; None until it was read.
    role_codes: tuple[RoleCode, ...] | None
    scope: str
    access_token: str
    need_patient_banner: bool
    smart_style_url: str | None
    capabilities: EhrCapabilities


def _load(deps: LaunchDeps, id_hash: str) -> AppSession:
    with transaction(deps.sessions) as db:
        return session_row(db, id_hash)


async def _refresh(deps: LaunchDeps, row: AppSession) -> AppSession:
    if not row.refresh_token_enc:
        raise SessionExpired("Your EHR authorization has expired.", RELAUNCH)
    org = await in_thread(_organization, deps, row.organization_id)
    if org is None:
        raise SessionExpired("The organization of this session was removed.", RELAUNCH)
    form = {"grant_type": "refresh_token", "refresh_token": deps.tokens.open(row.refresh_token_enc)}
    try:
        token = await request_token(deps.http, row.token_endpoint, form,
                                    await in_thread(client_identity, deps, org))
    except LaunchError as exc:
        # Another worker may have rotated the refresh token first; its result is as good.
        fresh = await in_thread(_load, deps, row.id_hash)
        if fresh.refresh_count != row.refresh_count and fresh.token_expires_at > utcnow():
            return fresh
        raise SessionExpired("The EHR no longer accepts this session's authorization.",
                             RELAUNCH) from exc
    now = utcnow()
    values = {"access_token_enc": deps.tokens.seal(token.access_token),
              "token_expires_at": now + timedelta(seconds=token.expires_in),
              "refresh_count": row.refresh_count + 1}
    if token.refresh_token:
        values["refresh_token_enc"] = deps.tokens.seal(token.refresh_token)
    return await in_thread(_store_refresh, deps, row.id_hash, values)


def _organization(deps: LaunchDeps, org_id: str) -> Organization | None:
    with transaction(deps.sessions) as db:
        return get_organization(db, org_id)


def _store_refresh(deps: LaunchDeps, id_hash: str, values: dict[str, object]) -> AppSession:
    with transaction(deps.sessions) as db:
        db.execute(update(AppSession).where(AppSession.id_hash == id_hash).values(**values))
    return _load(deps, id_hash)


async def active_session(deps: LaunchDeps, handle: str | None) -> ActiveSession:
    """The session behind a browser handle, with a fresh access token; SessionExpired otherwise."""
    if not handle:
        raise SessionExpired("This page needs a session started from the EHR.", RELAUNCH)
    return await current_session(deps, await in_thread(_load, deps, hash_handle(handle)))


def session_row(db: Session, id_hash: str) -> AppSession:
    """A live session's row, read in the caller's transaction; SessionExpired when there is none."""
    row = db.get(AppSession, id_hash)
    if row is None or row.expires_at <= utcnow():
        raise SessionExpired("Your session with this app has ended or was never started.", RELAUNCH)
    return row


def role_codes_of(row: AppSession) -> tuple[RoleCode, ...] | None:
    """What the EHR exposed about the session's user, as stored (None until read)."""
    return None if row.role_codes is None else tuple(RoleCode.from_json(c) for c in row.role_codes)


async def current_session(deps: LaunchDeps, row: AppSession) -> ActiveSession:
    """The session as the web layer sees it, its access token refreshed first when it is about to lapse."""
    if row.token_expires_at - REFRESH_MARGIN <= utcnow():
        row = await _refresh(deps, row)
    return ActiveSession(
        id_hash=row.id_hash, organization_id=row.organization_id, fhir_base=row.fhir_base,
        kind=LaunchKind(row.kind), patient_id=row.patient_id, encounter_id=row.encounter_id,
        fhir_user=row.fhir_user, user_name=row.user_name, role_codes=role_codes_of(row), scope=row.scope,
        access_token=deps.tokens.open(row.access_token_enc),
        need_patient_banner=row.need_patient_banner, smart_style_url=row.smart_style_url,
        capabilities=EhrCapabilities.from_json(row.capabilities))


def settle_identity(deps: LaunchDeps, session: ActiveSession, name: str | None,
                    codes: tuple[RoleCode, ...]) -> ActiveSession:
    """Keep who the EHR says the user is (name, role codes) on the session; the launch's own data stays.

    Returns the session as it now stands, so roles can be decided again at once.
    """
    kept = tuple(c for c in session.role_codes or () if c.source is CodeSource.LAUNCH)
    merged = tuple(dict.fromkeys(kept + codes))
    name = (name or "")[:200] or None
    if session.role_codes is None or set(merged) != set(session.role_codes) or name != session.user_name:
        with transaction(deps.sessions) as db:
            db.execute(update(AppSession).where(AppSession.id_hash == session.id_hash).values(
                user_name=name, role_codes=[c.to_json() for c in merged]))
    return replace(session, user_name=name, role_codes=merged)


@dataclass(frozen=True)
class SeenUser:
    """Someone who opened the app in an organization: as the EHR named them at their latest session."""

    user: str
    name: str | None
    role_codes: tuple[RoleCode, ...]
    last_seen: datetime


def seen_users(db: Session, organization_id: str, limit: int = 500) -> list[SeenUser]:
    """The people who opened the app in the organization, most recent first (for the roles page)."""
    rows = db.execute(select(AppSession.fhir_user, AppSession.user_name, AppSession.role_codes,
                             AppSession.created_at)
                      .where(AppSession.organization_id == organization_id, AppSession.fhir_user.is_not(None))
                      .order_by(AppSession.created_at.desc()).limit(limit * 4)).all()
    found: dict[str, SeenUser] = {}
    for fhir_user, name, codes, created in rows:
        user = user_reference(fhir_user)
        if user and user not in found:
            found[user] = SeenUser(user, name, tuple(RoleCode.from_json(c) for c in codes or ()), created)
    return list(found.values())[:limit]
