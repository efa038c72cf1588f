"""Practitioners as the EHR describes them (name, credentials, NPI), read for the claims that name them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.billing.models import PractitionerRow
from smart_app.dialect_upsert import upsert
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.names import PractitionerDetails, practitioner_details
from smart_app.errors import EhrError, SessionExpired
from smart_app.launch.organizations import Organization
from smart_app.ledger.models import TimeEntryRow

# Reference types a practitioner read can name (a performer may be a PractitionerRole).
_READABLE = ("Practitioner", "PractitionerRole")


def month_people(db: Session, org: Organization, month: str) -> set[str]:
    """Everyone a month's claims may name: each performer of the month's time, the billing and supervising
    practitioners."""
    found = set(db.scalars(select(TimeEntryRow.performer).where(
        TimeEntryRow.organization_id == org.id, TimeEntryRow.month == month).distinct()))
    found.update(r for r in (org.billing_practitioner, org.supervising_practitioner) if r)
    return found


async def read_people(client: FhirClient, references: Iterable[str]) -> dict[str, PractitionerDetails]:
    """Each Practitioner (or PractitionerRole's practitioner) read from the EHR; one the EHR refuses is left out,
    so the claim says its NPI is not on file rather than failing the month."""
    wanted = sorted({r for r in references if r.split("/", 1)[0] in _READABLE and "/" in r})

    async def one(reference: str) -> PractitionerDetails | None:
        kind, rid = reference.split("/", 1)
        try:
            resource = await client.read(kind, rid)
            if kind == "PractitionerRole":
                target = str((resource.get("practitioner") or {}).get("reference") or "")
                if not target.startswith("Practitioner/"):
                    return None
                resource = await client.read("Practitioner", target.split("/", 1)[1])
        except SessionExpired:
            raise
        except EhrError:
            return None
        return practitioner_details(reference, resource)

    found = await asyncio.gather(*(one(r) for r in wanted))
    return {d.reference: d for d in found if d is not None}


def save_people(db: Session, organization_id: str, people: Mapping[str, PractitionerDetails], now: datetime) -> None:
    """Keep what was read, so a rollup from saved facts names the same people."""
    for details in people.values():
        upsert(db, PractitionerRow, {"organization_id": organization_id, "reference": details.reference,
                                     "name": details.name, "credentials": details.credentials,
                                     "npi": details.npi, "fetched_at": now},
               ("organization_id", "reference"))


def known_people(db: Session, organization_id: str) -> dict[str, PractitionerDetails]:
    """The organization's practitioners as last read, by reference."""
    return {row.reference: PractitionerDetails(row.reference, row.name, row.credentials, row.npi)
            for row in db.scalars(select(PractitionerRow).where(PractitionerRow.organization_id == organization_id))}
