"""The SMART EHR launch: `/launch` starts it (PKCE, state in the database), `/callback` ends it."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.crypto import TokenBox, hash_handle
from smart_app.db import transaction, utcnow
from smart_app.errors import LaunchError
from smart_app.launch.audit_events import record_launch
from smart_app.launch.ehr_metadata import cached_capabilities, cached_discovery
from smart_app.launch.keys import assertion_form, signing_key
from smart_app.launch.models import AppSession, PendingLaunch
from smart_app.launch.organizations import Organization, find_by_issuer, get_organization
from smart_app.launch.scopes import launch_scopes
from smart_app.launch.token_client import request_token, verify_id_token

log = logging.getLogger(__name__)

# A person takes seconds at the EHR's authorize page; ten minutes leaves room for a slow SSO.
PENDING_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class LaunchDeps:
    """What the launch needs from the outside world."""

    sessions: sessionmaker[Session]
    http: httpx.AsyncClient
    tokens: TokenBox
    redirect_uri: str
    session_lifetime: timedelta


def client_auth_form(deps: LaunchDeps, org: Organization, token_url: str) -> dict[str, str]:
    """How the app identifies itself at the token endpoint: client_id, or a signed assertion."""
    if org.client_auth == "public":
        return {"client_id": org.client_id}
    with transaction(deps.sessions) as db:
        key = signing_key(db, org.key_id)
    return assertion_form(key, deps.tokens, org.client_id, token_url)


async def begin_launch(deps: LaunchDeps, iss: str | None, launch: str | None) -> str:
    """Validate the EHR's launch request and return the authorize URL to redirect to."""
    if not iss:
        raise LaunchError("The launch request has no `iss` (the EHR's FHIR address).",
                          "Open the app from a patient's chart in the EHR, not by its address.")
    if not launch:
        raise LaunchError("The launch request has no `launch` parameter.",
                          "Open the app from a patient's chart in the EHR, not by its address.")
    with transaction(deps.sessions) as db:
        org = find_by_issuer(db, iss)
    if org is None:
        raise LaunchError(f"This app is not installed for the EHR at {iss}.",
                          "An EHR administrator must register this EHR with the app first "
                          "(see docs/install.md).")
    if org.client_auth == "private_key_jwt":
        # Fail before the user signs in at the EHR, not after.
        with transaction(deps.sessions) as db:
            signing_key(db, org.key_id)
    # The CapabilityStatement is public: read it beside discovery so it adds no wait.
    config, (capabilities, why_not) = await asyncio.gather(
        cached_discovery(deps.sessions, deps.http, org.issuer),
        cached_capabilities(deps.sessions, deps.http, org.issuer))
    if why_not:
        log.warning("EHR %s: %s; the app will read without batch", org.issuer, why_not)
    if "S256" not in config.code_challenge_methods:
        raise LaunchError("The EHR does not offer PKCE with S256, which the app requires.",
                          "Ask the EHR administrator to enable SMART App Launch 2.0.")
    state, verifier, nonce = generate_token(32), generate_token(64), generate_token(24)
    scope = launch_scopes()
    with transaction(deps.sessions) as db:
        db.add(PendingLaunch(
            state=state, organization_id=org.id, fhir_base=org.issuer,
            token_endpoint=config.token_endpoint, code_verifier=deps.tokens.seal(verifier), nonce=nonce,
            jwks_uri=config.jwks_uri, id_token_issuer=config.issuer or org.issuer,
            capabilities=capabilities.to_json(),
            scope=scope, created_at=utcnow()))
    return prepare_grant_uri(
        config.authorization_endpoint, client_id=org.client_id, response_type="code",
        redirect_uri=deps.redirect_uri, scope=scope, state=state, aud=org.issuer, launch=launch,
        code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
        nonce=nonce)


def _consume(db: Session, state: str) -> PendingLaunch:
    """Mark the pending launch used, atomically, so a replayed callback finds nothing."""
    now = utcnow()
    result = db.execute(
        update(PendingLaunch)
        .where(PendingLaunch.state == state, PendingLaunch.consumed_at.is_(None),
               PendingLaunch.created_at > now - PENDING_LIFETIME)
        .values(consumed_at=now))
    if result.rowcount != 1:
        raise LaunchError("This sign-in response is unknown, expired or was already used.",
                          "Relaunch the app from the patient's chart.")
    return db.get(PendingLaunch, state)  # type: ignore[return-value]


async def complete_launch(deps: LaunchDeps, params: dict[str, str]) -> tuple[str, AppSession]:
    """Finish the callback: check state once, exchange the code, store the session.

    Returns the opaque session handle for the browser and the stored session.
    """
    state = params.get("state")
    if not state:
        raise LaunchError("The EHR's response carries no `state`.",
                          "Relaunch the app from the patient's chart.")
    with transaction(deps.sessions) as db:
        pending = _consume(db, state)
        org = get_organization(db, pending.organization_id)
    if org is None:
        raise LaunchError("The organization of this launch was removed.",
                          "Ask the EHR administrator to reinstall the app.")
    if params.get("error"):
        if params["error"] == "access_denied":
            raise LaunchError("Access was denied at the EHR.",
                              "If that was a mistake, relaunch the app and approve access.")
        raise LaunchError(f"The EHR refused the sign-in: {params.get('error_description') or params['error']}.",
                          "Relaunch the app from the patient's chart; if it persists, tell the "
                          "EHR administrator.")
    code = params.get("code")
    if not code:
        raise LaunchError("The EHR's response carries no authorization code.",
                          "Relaunch the app from the patient's chart.")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": deps.redirect_uri,
            "code_verifier": deps.tokens.open(pending.code_verifier),
            **client_auth_form(deps, org, pending.token_endpoint)}
    token = await request_token(deps.http, pending.token_endpoint, form)
    if not token.patient:
        raise LaunchError("The EHR launched the app without a patient in context.",
                          "Open the app from within a patient's chart.")
    fhir_user = None
    if token.id_token:
        claims = await verify_id_token(deps.http, token.id_token, pending.jwks_uri,
                                       pending.id_token_issuer, org.client_id, pending.nonce)
        fhir_user = claims.get("fhirUser") or claims.get("profile")
    handle = secrets.token_urlsafe(32)
    now = utcnow()
    row = AppSession(
        id_hash=hash_handle(handle), organization_id=org.id, fhir_base=pending.fhir_base,
        token_endpoint=pending.token_endpoint, patient_id=token.patient,
        encounter_id=token.encounter, fhir_user=str(fhir_user) if fhir_user else None,
        scope=token.scope, access_token_enc=deps.tokens.seal(token.access_token),
        refresh_token_enc=deps.tokens.seal(token.refresh_token) if token.refresh_token else None,
        token_expires_at=now + timedelta(seconds=token.expires_in),
        need_patient_banner=token.need_patient_banner, smart_style_url=token.smart_style_url,
        capabilities=pending.capabilities,
        created_at=now, expires_at=now + deps.session_lifetime, refresh_count=0)
    with transaction(deps.sessions) as db:
        db.add(row)
        record_launch(db, row, org.id)
    return handle, row
