"""SMART Backend Services: an access token for unattended jobs (client_credentials + private_key_jwt)."""

from __future__ import annotations

from datetime import datetime, timedelta

from smart_app.db import in_thread, transaction, utcnow
from smart_app.dialect_upsert import upsert
from smart_app.errors import ConfigError, LaunchError
from smart_app.launch.ehr_metadata import cached_discovery
from smart_app.launch.flow import LaunchDeps
from smart_app.launch.keys import private_key, signing_key
from smart_app.launch.models import BackendTokenRow, SigningKey
from smart_app.launch.organizations import Organization
from smart_app.launch.scopes import backend_scopes
from smart_app.launch.token_client import ClientIdentity, request_token

# Re-use a stored token only while it has this long left, so a job never starts on a dying token.
MIN_REMAINING = timedelta(minutes=2)


async def backend_token(deps: LaunchDeps, org: Organization, scope: str | None = None) -> str:
    """A system-scoped access token for the organization's EHR, cached encrypted in the database."""
    cached = await in_thread(_cached, deps, org.id)
    if cached is not None:
        return cached
    if org.client_auth != "private_key_jwt" and not org.backend_client_id:
        raise ConfigError(f"Organization {org.id!r} is registered as a public client, which cannot use "
                          "SMART Backend Services.",
                          "Register the app with private_key_jwt, or register a backend app and set its "
                          "backend_client_id in the organization file (see docs/install.md), to run month-end "
                          "jobs.")
    config = await cached_discovery(deps.sessions, deps.http, org.issuer)
    if "client_credentials" not in config.grant_types:
        raise ConfigError(f"The EHR of {org.id!r} does not offer SMART Backend Services (client_credentials).",
                          "Ask the EHR administrator to enable backend services for the app's client.")
    key = await in_thread(_key, deps, org.key_id)
    client = ClientIdentity(org.backend_client, private_key(key, deps.tokens), key.kid, key.alg)
    form = {"grant_type": "client_credentials", "scope": scope or backend_scopes()}
    try:
        token = await request_token(deps.http, config.token_endpoint, form, client)
    except LaunchError as exc:
        # No chart to relaunch from: say what an administrator checks instead.
        raise LaunchError(f"{exc.message} (backend client {org.backend_client!r} of organization {org.id!r})",
                          "Check that the EHR registers this client id for backend services with the app's JWKS "
                          "URL and the system scopes in docs/install.md, then run the job again.") from exc
    await in_thread(_keep, deps, org.id, token.access_token, token.scope,
                    utcnow() + timedelta(seconds=token.expires_in))
    return token.access_token


def _cached(deps: LaunchDeps, org_id: str) -> str | None:
    with transaction(deps.sessions) as db:
        row = db.get(BackendTokenRow, org_id)
        if row is not None and row.expires_at - MIN_REMAINING > utcnow():
            return deps.tokens.open(row.access_token_enc)
    return None


def _key(deps: LaunchDeps, key_id: str) -> SigningKey:
    with transaction(deps.sessions) as db:
        return signing_key(db, key_id)


def _keep(deps: LaunchDeps, org_id: str, access_token: str, scope: str, expires_at: datetime) -> None:
    # An upsert: two processes fetching the organization's first token at once both store theirs, neither fails.
    with transaction(deps.sessions) as db:
        upsert(db, BackendTokenRow, {"organization_id": org_id, "access_token_enc": deps.tokens.seal(access_token),
                                     "scope": scope, "expires_at": expires_at}, ("organization_id",))
