"""Tables of the launch room: organizations, pending launches (OAuth state) and app sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smart_app.db import Base, UTCDateTime


class LaunchKind(StrEnum):
    """How a session began: launched from a patient's chart, or a person's own sign-in."""

    EHR = "ehr-launch"
    STANDALONE = "standalone"


class OrganizationRow(Base):
    """One installed organization, loaded from its file in `launch/`."""

    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Several organizations may share one EHR (migration 0010); each is launched from `/launch/<id>`.
    issuer: Mapped[str] = mapped_column(String(500), index=True)
    client_id: Mapped[str] = mapped_column(String(200))
    client_auth: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PendingLaunch(Base):
    """OAuth state of a launch between authorize and callback; consumed exactly once."""

    __tablename__ = "pending_launches"

    state: Mapped[str] = mapped_column(String(100), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    fhir_base: Mapped[str] = mapped_column(String(500))
    token_endpoint: Mapped[str] = mapped_column(String(500))
    code_verifier: Mapped[str] = mapped_column(String(200))
    nonce: Mapped[str] = mapped_column(String(100))
    jwks_uri: Mapped[str] = mapped_column(String(500))
    id_token_issuer: Mapped[str] = mapped_column(String(500))
    capabilities: Mapped[dict] = mapped_column(JSON)
    scope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # ehr-launch (from a chart, with a patient) or standalone (a biller's own sign-in, no patient).
    kind: Mapped[str] = mapped_column(String(12), default=LaunchKind.EHR, server_default=LaunchKind.EHR)
    # Where a standalone sign-in lands afterwards (a path of the app, checked at /signin).
    next_path: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # SHA-256 of the nonce the starting browser keeps (cookie and sessionStorage): the callback must show it.
    browser_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AppSession(Base):
    """A launched session: bound to one organization, user and patient; tokens encrypted."""

    __tablename__ = "app_sessions"

    # sha256 of the opaque handle the browser holds; the handle itself is never stored.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    fhir_base: Mapped[str] = mapped_column(String(500))
    token_endpoint: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(12), default=LaunchKind.EHR, server_default=LaunchKind.EHR)
    # None for a standalone sign-in: such a session reaches no patient's chart.
    patient_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    encounter_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    fhir_user: Mapped[str | None] = mapped_column(String(500), nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The role codes the EHR exposed about the user (RoleCode.to_json), None until they were read.
    role_codes: Mapped[list | None] = mapped_column(JSON, nullable=True)
    scope: Mapped[str] = mapped_column(Text)
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    token_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    need_patient_banner: Mapped[bool] = mapped_column(Boolean, default=True)
    smart_style_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # What the EHR's CapabilityStatement offered at launch (batch, creates, ...).
    capabilities: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refresh_count: Mapped[int] = mapped_column(Integer, default=0)


class SigningKey(Base):
    """The app's private keys for client assertions; retired keys stay published for an overlap."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(100), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10))
    private_jwk_enc: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # After this instant the key is no longer published; EHRs caching the JWKS have moved on.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BackendTokenRow(Base):
    """The organization's current SMART Backend Services access token, encrypted."""

    __tablename__ = "backend_tokens"

    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    access_token_enc: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EhrMetadataRow(Base):
    """An EHR's SMART discovery document or CapabilityStatement summary, kept for a while (`launch.ehr_metadata`)."""

    __tablename__ = "ehr_metadata"

    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    # smart-configuration (the discovery result) | capabilities (what the FHIR server accepts)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    document: Mapped[dict] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
