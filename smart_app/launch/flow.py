"""The SMART launches: from a chart (`/launch`, with a patient) or a person's own sign-in (`/signin`, no patient).

Both store their OAuth state in the database (PKCE verifier, nonce) and bind it to the browser that started
them: the start page leaves a random nonce in a cookie and in sessionStorage, and the callback completes only
when the same browser shows it again, so a callback URL obtained for someone else's launch (login CSRF)
completes nowhere else.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.access.roles import CodeSource
from smart_app.crypto import TokenBox, hash_handle
from smart_app.db import in_thread, transaction, utcnow
from smart_app.ehr.identity import launch_codes as launch_codes_of
from smart_app.errors import LaunchError
from smart_app.launch.audit_events import record_launch
from smart_app.launch.ehr_metadata import cached_capabilities, cached_discovery
from smart_app.launch.keys import private_key, signing_key
from smart_app.launch.models import AppSession, LaunchKind, PendingLaunch
from smart_app.launch.organizations import Organization, get_organization, organizations_for_issuer
from smart_app.launch.scopes import launch_scopes, sign_in_scopes
from smart_app.launch.token_client import (
    ClientIdentity,
    TokenResponse,
    client_auth_fields,
    request_token,
    verify_id_token,
)

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


def client_identity(deps: LaunchDeps, org: Organization) -> ClientIdentity:
    """Who the app is at the organization's token endpoint: its client_id, with its signing key if confidential."""
    if org.client_auth == "public":
        return ClientIdentity(org.client_id)
    with transaction(deps.sessions) as db:
        key = signing_key(db, org.key_id)
    return ClientIdentity(org.client_id, private_key(key, deps.tokens), key.kid, key.alg)


def client_auth_form(deps: LaunchDeps, org: Organization, token_url: str) -> dict[str, str]:
    """The fields that identify the app at the token endpoint: client_id, or a signed assertion."""
    return client_auth_fields(client_identity(deps, org), token_url)


@dataclass(frozen=True)
class LaunchStart:
    """Where to send the browser next, and the nonce it must keep to finish the launch."""

    authorize_url: str
    state: str
    browser_nonce: str


@dataclass(frozen=True)
class LaunchResult:
    """A completed launch: the browser's session handle, the stored session and where it goes next."""

    handle: str
    session: AppSession
    next_path: str | None
    token: TokenResponse


class LaunchNotBound(LaunchError):
    """The callback came to a browser that did not start the launch."""


async def begin_launch(deps: LaunchDeps, iss: str | None, launch: str | None,
                       organization_id: str | None = None) -> LaunchStart:
    """Validate the EHR's launch request; the authorize URL to send the browser to.

    `organization_id`: from the organization's own launch URL (`/launch/<id>`), which every organization sharing
    an EHR needs; at `/launch` the issuer alone must name one organization.
    """
    if not iss:
        raise LaunchError("The launch request has no `iss` (the EHR's FHIR address).",
                          "Open the app from a patient's chart in the EHR, not by its address.")
    if not launch:
        raise LaunchError("The launch request has no `launch` parameter.",
                          "Open the app from a patient's chart in the EHR, not by its address.")
    org = await in_thread(_launched_organization, deps, iss, organization_id)
    return await _begin(deps, org, LaunchKind.EHR, launch=launch, scope=launch_scopes())


def _launched_organization(deps: LaunchDeps, iss: str, organization_id: str | None) -> Organization:
    """The organization a launch from the EHR at `iss` is for; LaunchError saying what to register otherwise."""
    issuer = iss.rstrip("/")
    with transaction(deps.sessions) as db:
        if organization_id is not None:
            org = get_organization(db, organization_id)
            if org is None:
                raise LaunchError(f"No organization {organization_id!r} is installed in this app.",
                                  "The EHR's launch URL names an organization the app does not know: an EHR "
                                  "administrator checks the launch URL registered for the app (see "
                                  "docs/install.md).")
            if org.issuer != issuer:
                raise LaunchError(f"This launch URL is for {org.name}, whose EHR is at {org.issuer}, but the EHR at "
                                  f"{issuer} opened it.",
                                  "An EHR administrator registers each organization's own launch URL with its own "
                                  "EHR (see docs/install.md).")
            return org
        found = organizations_for_issuer(db, issuer)
    if not found:
        raise LaunchError(f"This app is not installed for the EHR at {iss}.",
                          "An EHR administrator must register this EHR with the app first "
                          "(see docs/install.md).")
    if len(found) > 1:
        names = ", ".join(f"{o.name} (/launch/{o.id})" for o in found)
        raise LaunchError(f"Several organizations use the EHR at {issuer} ({names}), so the app cannot tell "
                          "which one this launch is for.",
                          "An EHR administrator registers each organization's own launch URL, <app "
                          "address>/launch/<organization id>, instead of /launch (see docs/install.md).")
    return found[0]


async def begin_sign_in(deps: LaunchDeps, org: Organization, next_path: str) -> LaunchStart:
    """A person's own sign-in at the organization's EHR (no patient): for billers and administrators."""
    return await _begin(deps, org, LaunchKind.STANDALONE, next_path=next_path, scope=sign_in_scopes())


async def _begin(deps: LaunchDeps, org: Organization, kind: LaunchKind, *, scope: str, launch: str | None = None,
                 next_path: str | None = None) -> LaunchStart:
    if org.client_auth == "private_key_jwt":
        # Fail before the user signs in at the EHR, not after.
        await in_thread(client_identity, deps, org)
    # The CapabilityStatement is public: read it beside discovery so it adds no wait.
    config, (capabilities, why_not) = await asyncio.gather(
        cached_discovery(deps.sessions, deps.http, org.issuer),
        cached_capabilities(deps.sessions, deps.http, org.issuer))
    if why_not:
        log.warning("EHR of organization %s: %s; the app will read without batch", org.id, why_not)
    if "S256" not in config.code_challenge_methods:
        raise LaunchError("The EHR does not offer PKCE with S256, which the app requires.",
                          "Ask the EHR administrator to enable SMART App Launch 2.0.")
    state, verifier, nonce, browser_nonce = generate_token(32), generate_token(64), generate_token(24), \
        generate_token(32)
    await in_thread(_store, deps, PendingLaunch(
        state=state, organization_id=org.id, fhir_base=org.issuer,
        token_endpoint=config.token_endpoint, code_verifier=deps.tokens.seal(verifier), nonce=nonce,
        jwks_uri=config.jwks_uri, id_token_issuer=config.issuer or org.issuer,
        capabilities=capabilities.to_json(), scope=scope, created_at=utcnow(), kind=kind,
        next_path=next_path, browser_hash=hash_handle(browser_nonce)))
    extra = {"launch": launch} if launch else {}
    url: str = prepare_grant_uri(
        config.authorization_endpoint, client_id=org.client_id, response_type="code",
        redirect_uri=deps.redirect_uri, scope=scope, state=state, aud=org.issuer,
        code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
        nonce=nonce, **extra)
    return LaunchStart(authorize_url=url, state=state, browser_nonce=browser_nonce)


def _store(deps: LaunchDeps, row: PendingLaunch | AppSession) -> None:
    with transaction(deps.sessions) as db:
        db.add(row)


def _store_session(deps: LaunchDeps, row: AppSession, organization_id: str) -> None:
    with transaction(deps.sessions) as db:
        db.add(row)
        record_launch(db, row, organization_id)


def _consume_launch(deps: LaunchDeps, state: str, browser_nonce: str | None) -> tuple[PendingLaunch,
                                                                                      Organization | None]:
    with transaction(deps.sessions) as db:
        pending = _consume(db, state, browser_nonce)
        return pending, get_organization(db, pending.organization_id)


def _consume(db: Session, state: str, browser_nonce: str | None) -> PendingLaunch:
    """Check the launch belongs to this browser, then mark it used atomically so a replay finds nothing."""
    now = utcnow()
    pending = db.get(PendingLaunch, state)
    if pending is None or pending.consumed_at is not None or pending.created_at <= now - PENDING_LIFETIME:
        raise LaunchError("This sign-in response is unknown, expired or was already used.",
                          "Relaunch the app from the patient's chart.")
    if not (browser_nonce and pending.browser_hash
            and hmac.compare_digest(hash_handle(browser_nonce), pending.browser_hash)):
        raise LaunchNotBound("This sign-in was not started in this browser, so the app did not complete it.",
                             "Open the app again from the patient's chart in the EHR (billers: from the app's "
                             "billing address).")
    # An UPDATE through a Session answers with a CursorResult, which carries the rowcount.
    result = cast(CursorResult[Any], db.execute(
        update(PendingLaunch)
        .where(PendingLaunch.state == state, PendingLaunch.consumed_at.is_(None))
        .values(consumed_at=now)))
    if result.rowcount != 1:
        raise LaunchError("This sign-in response was already used.", "Relaunch the app from the patient's chart.")
    return pending


# A FHIR id is [A-Za-z0-9-.]{1,64}; references and fhirUser URLs are longer but still plain printable text.
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _check_ids(patient: str | None, encounter: str | None, fhir_user: str | None) -> None:
    """Refuse context the EHR sent that no FHIR server would (a NUL, control characters, a 5,000-character id)."""
    for what, value in (("patient", patient), ("encounter", encounter)):
        if value is not None and not _FHIR_ID.match(value):
            raise LaunchError(f"The EHR named a {what} id the app cannot use ({value[:20]!r}...).",
                              "Tell the EHR administrator; a FHIR id is letters, digits, '-' and '.', at most 64.")
    if fhir_user is not None and (len(fhir_user) > 500 or not fhir_user.isprintable()):
        raise LaunchError("The EHR named the signed-in user in a form the app cannot use.",
                          "Tell the EHR administrator: fhirUser must be a FHIR reference or URL.")


def _refused(params: dict[str, str]) -> LaunchError:
    if params["error"] == "access_denied":
        return LaunchError("Access was denied at the EHR.",
                           "If that was a mistake, relaunch the app and approve access.")
    # Only shown for a launch this browser started (checked before), and marked as the EHR's words.
    said = " ".join((params.get("error_description") or params["error"]).split())[:300]
    return LaunchError(f"The EHR refused the sign-in ({params['error'][:60]}). The EHR said: \u201c{said}\u201d",
                       "Relaunch the app; if it persists, tell the EHR administrator.")


async def complete_launch(deps: LaunchDeps, params: dict[str, str], browser_nonce: str | None) -> LaunchResult:
    """Finish the callback: check state and browser once, exchange the code, store the session."""
    state = params.get("state")
    if not state:
        raise LaunchError("The EHR's response carries no `state`.",
                          "Relaunch the app from the patient's chart.")
    pending, org = await in_thread(_consume_launch, deps, state, browser_nonce)
    if org is None:
        raise LaunchError("The organization of this launch was removed.",
                          "Ask the EHR administrator to reinstall the app.")
    if params.get("error"):
        raise _refused(params)
    code = params.get("code")
    if not code:
        raise LaunchError("The EHR's response carries no authorization code.",
                          "Relaunch the app from the patient's chart.")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": deps.redirect_uri,
            "code_verifier": deps.tokens.open(pending.code_verifier)}
    token = await request_token(deps.http, pending.token_endpoint, form, await in_thread(client_identity, deps, org))
    kind = LaunchKind(pending.kind)
    if kind is LaunchKind.EHR and not token.patient:
        raise LaunchError("The EHR launched the app without a patient in context.",
                          "Open the app from within a patient's chart.")
    fhir_user = None
    if token.id_token:
        claims = await verify_id_token(deps.http, token.id_token, pending.jwks_uri,
                                       pending.id_token_issuer, org.client_id, pending.nonce)
        fhir_user = claims.get("fhirUser") or claims.get("profile") or (f"sub:{claims['sub']}" if claims.get("sub")
                                                                        else None)
    _check_ids(token.patient, token.encounter, str(fhir_user) if fhir_user else None)
    if kind is LaunchKind.STANDALONE and not fhir_user:
        raise LaunchError("The EHR did not say who signed in, so the app cannot tell your role.",
                          "Ask the EHR administrator to allow the openid and fhirUser scopes for this app.")
    handle = secrets.token_urlsafe(32)
    now = utcnow()
    # Site launch data named by the organization's role mappings is kept; the rest of it is not stored.
    wanted = {m.system for m in org.role_map if m.source is CodeSource.LAUNCH}
    launch_codes = [code.to_json() for code in launch_codes_of(
        {k: v for k, v in token.extra.items() if k in wanted})]
    row = AppSession(
        id_hash=hash_handle(handle), organization_id=org.id, fhir_base=pending.fhir_base,
        token_endpoint=pending.token_endpoint, kind=kind,
        patient_id=token.patient if kind is LaunchKind.EHR else None,
        encounter_id=token.encounter if kind is LaunchKind.EHR else None,
        fhir_user=str(fhir_user) if fhir_user else None,
        role_codes=launch_codes or None,
        scope=token.scope, access_token_enc=deps.tokens.seal(token.access_token),
        refresh_token_enc=deps.tokens.seal(token.refresh_token) if token.refresh_token else None,
        token_expires_at=now + timedelta(seconds=token.expires_in),
        need_patient_banner=token.need_patient_banner, smart_style_url=token.smart_style_url,
        capabilities=pending.capabilities,
        created_at=now, expires_at=now + deps.session_lifetime, refresh_count=0)
    await in_thread(_store_session, deps, row, org.id)
    return LaunchResult(handle=handle, session=row, next_path=pending.next_path, token=token)
