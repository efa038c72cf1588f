"""An EHR's discovery document and CapabilityStatement, kept in the database for `METADATA_TTL` per issuer.

Every `/launch` needs both, and anyone may request `/launch`: without a cache each request cost the EHR two
reads. The cache is a table (`ehr_metadata`), so every worker shares it; a failed read is not cached (the next
launch tries again), and two workers missing at once both read and the later write wins. `smart-app org check`
reads the EHR afresh, as an administrator checking a change expects.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import in_thread, rows_changed, transaction, utcnow
from smart_app.dialect_upsert import upsert
from smart_app.ehr.capabilities import EhrCapabilities, fetch_capabilities
from smart_app.launch.discovery import (
    SmartConfiguration,
    discover,
    parse_capability_statement,
    parse_smart_configuration,
)
from smart_app.launch.models import EhrMetadataRow

# An EHR changes its endpoints or what it accepts rarely, and announces it; an hour bounds how long the app
# keeps using the old answer.
METADATA_TTL = timedelta(hours=1)
DISCOVERY, CAPABILITIES = "smart-configuration", "capabilities"


def _read(sessions: sessionmaker[Session], issuer: str, kind: str, now: datetime) -> dict | None:
    with transaction(sessions) as db:
        row = db.get(EhrMetadataRow, (issuer, kind))
        return dict(row.document) if row is not None and row.expires_at > now else None


def _write(sessions: sessionmaker[Session], issuer: str, kind: str, document: dict, now: datetime) -> None:
    with transaction(sessions) as db:
        upsert(db, EhrMetadataRow, {"issuer": issuer, "kind": kind, "document": document, "fetched_at": now,
                                    "expires_at": now + METADATA_TTL}, ("issuer", "kind"))


async def cached_discovery(sessions: sessionmaker[Session], http: httpx.AsyncClient, issuer: str) -> SmartConfiguration:
    """`launch.discovery.discover`, answered from the cache while it is fresh."""
    now = utcnow()
    kept = await in_thread(_read, sessions, issuer, DISCOVERY, now)
    if kept is not None:
        parse = parse_capability_statement if kept["source"] == "CapabilityStatement" else parse_smart_configuration
        return parse(kept["raw"])
    config = await discover(http, issuer)
    await in_thread(_write, sessions, issuer, DISCOVERY, {"source": config.source, "raw": config.raw}, now)
    return config


async def cached_capabilities(sessions: sessionmaker[Session], http: httpx.AsyncClient,
                              issuer: str) -> tuple[EhrCapabilities, str | None]:
    """`ehr.capabilities.fetch_capabilities`, answered from the cache while it is fresh (failures are not kept)."""
    now = utcnow()
    kept = await in_thread(_read, sessions, issuer, CAPABILITIES, now)
    if kept is not None:
        return EhrCapabilities.from_json(kept), None
    capabilities, why_not = await fetch_capabilities(http, issuer)
    if why_not is None:
        await in_thread(_write, sessions, issuer, CAPABILITIES, capabilities.to_json(), now)
    return capabilities, why_not


def purge_metadata(db: Session, now: datetime) -> int:
    """Delete expired entries; how many."""
    return rows_changed(db.execute(delete(EhrMetadataRow).where(EhrMetadataRow.expires_at <= now)))
