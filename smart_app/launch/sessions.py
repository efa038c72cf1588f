"""Launched sessions: find one by the browser's handle, and keep its access token fresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update

from smart_app.crypto import hash_handle
from smart_app.db import transaction, utcnow
from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.errors import LaunchError, SessionExpired
from smart_app.launch.flow import LaunchDeps, client_identity
from smart_app.launch.models import AppSession
from smart_app.launch.organizations import get_organization
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
    patient_id: str
    encounter_id: str | None
    fhir_user: str | None
    performer_role: str | None
    scope: str
    access_token: str
    need_patient_banner: bool
    smart_style_url: str | None
    capabilities: EhrCapabilities


def _load(deps: LaunchDeps, id_hash: str) -> AppSession:
    with transaction(deps.sessions) as db:
        row = db.get(AppSession, id_hash)
    if row is None or row.expires_at <= utcnow():
        raise SessionExpired("Your session with this app has ended or was never started.", RELAUNCH)
    return row


async def _refresh(deps: LaunchDeps, row: AppSession) -> AppSession:
    if not row.refresh_token_enc:
        raise SessionExpired("Your EHR authorization has expired.", RELAUNCH)
    with transaction(deps.sessions) as db:
        org = get_organization(db, row.organization_id)
    if org is None:
        raise SessionExpired("The organization of this session was removed.", RELAUNCH)
    form = {"grant_type": "refresh_token", "refresh_token": deps.tokens.open(row.refresh_token_enc)}
    try:
        token = await request_token(deps.http, row.token_endpoint, form, client_identity(deps, org))
    except LaunchError as exc:
        # Another worker may have rotated the refresh token first; its result is as good.
        fresh = _load(deps, row.id_hash)
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
    with transaction(deps.sessions) as db:
        db.execute(update(AppSession).where(AppSession.id_hash == row.id_hash).values(**values))
    return _load(deps, row.id_hash)


async def active_session(deps: LaunchDeps, handle: str | None) -> ActiveSession:
    """The session behind a browser handle, with a fresh access token; SessionExpired otherwise."""
    if not handle:
        raise SessionExpired("This page needs a session started from the EHR.", RELAUNCH)
    row = _load(deps, hash_handle(handle))
    if row.token_expires_at - REFRESH_MARGIN <= utcnow():
        row = await _refresh(deps, row)
    return ActiveSession(
        id_hash=row.id_hash, organization_id=row.organization_id, fhir_base=row.fhir_base,
        patient_id=row.patient_id, encounter_id=row.encounter_id, fhir_user=row.fhir_user,
        performer_role=row.performer_role,
        scope=row.scope, access_token=deps.tokens.open(row.access_token_enc),
        need_patient_banner=row.need_patient_banner, smart_style_url=row.smart_style_url,
        capabilities=EhrCapabilities.from_json(row.capabilities))


def settle_role(deps: LaunchDeps, id_hash: str, role: str) -> None:
    """Record the user's billing role on the session once the care team has been read."""
    with transaction(deps.sessions) as db:
        db.execute(update(AppSession).where(AppSession.id_hash == id_hash).values(performer_role=role))
