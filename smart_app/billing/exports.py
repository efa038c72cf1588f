"""What billers take away: superbills (HTML, PDF, CSV) and a FHIR export of everything for a month."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.billing.claims import StoredClaim, month_claims
from smart_app.billing.fhir_resources import ResourceInvalid, check_bundle, claim_resource, full_url
from smart_app.billing.models import OutboxRow
from smart_app.billing.outbox import RETIRING, full_url_of
from smart_app.billing.pricing import organization_pricing
from smart_app.billing.superbill import approval_text, superbill_csv, superbill_html, superbill_pdf
from smart_app.billing.supersede import retired_identifier
from smart_app.db import utcnow
from smart_app.ehr.care_team import relative_reference
from smart_app.errors import SmartAppError
from smart_app.launch.organizations import Organization
from smart_app.ledger.audit import EXPORTED, UNKNOWN_ACTOR, record_event
from smart_app.paths import data_path
from smart_app.statuses import ClaimStatus, OutboxStatus

FORMATS = ("html", "pdf", "csv")
DELIVERY_TAG = "urn:smart-app:delivery"


class NothingToExport(SmartAppError):
    """No claim matches what was asked."""

    title = "Nothing to export"
    status_code = 404


def superbill_claims(db: Session, org: Organization, month: str, patient_id: str | None = None,
                     include_proposed: bool = False) -> list[StoredClaim]:
    """The month's billable claims for a superbill: approved ones, and proposed ones when asked."""
    wanted = ({ClaimStatus.APPROVED, ClaimStatus.PROPOSED} if include_proposed
              else {ClaimStatus.APPROVED})
    claims = [c for c in month_claims(db, org.id, month)
              if c.claim.billable and c.status in wanted and (patient_id is None or c.patient_id == patient_id)]
    if not claims:
        scope = f"patient {patient_id}" if patient_id else org.name
        raise NothingToExport(f"No {'approved or proposed' if include_proposed else 'approved'} claims for "
                              f"{scope} in {month}.",
                              "Run `smart-app rollup` and approve claims on the biller page, or add "
                              "--include-proposed for a draft.")
    return claims


def record_export(db: Session, organization_id: str, *, by: str | None, what: str, month: str,
                  patients: Iterable[str]) -> None:
    """Audit that someone took patients' billing records out of the app (a superbill or a FHIR export)."""
    # A web user's fhirUser is a URL; the ledger names people as Practitioner/x. The command line has its own name.
    actor = relative_reference(by) if by and "/" in by else by
    record_event(db, actor=actor or UNKNOWN_ACTOR, action=EXPORTED,
                 subject=f"Export/{what}", organization_id=organization_id,
                 detail={"what": what, "month": month, "patients": sorted(set(patients))})


def render_superbill(claims: list[StoredClaim], org: Organization, month: str, fmt: str,
                     generated: datetime | None = None) -> bytes:
    """The superbill in one of FORMATS."""
    when = generated or utcnow()
    values = [c.claim for c in claims]
    pricing = organization_pricing(org)
    approvals = {c.patient_id: approval_text(c.reviewer or "", c.reviewed_at, org.timezone)
                 for c in claims if c.status == "approved" and c.reviewed_at}
    if fmt == "html":
        html = superbill_html(values, organization_name=org.name, month=month, generated=when, pricing=pricing,
                              approvals=approvals)
        return standalone(html).encode()
    if fmt == "pdf":
        return superbill_pdf(values, organization_name=org.name, month=month, generated=when, pricing=pricing,
                             approvals=approvals)
    if fmt == "csv":
        return superbill_csv(values, pricing=pricing).encode()
    raise SmartAppError(f"Unknown superbill format {fmt!r}.", f"Use one of {', '.join(FORMATS)}.")


def standalone(html: str) -> str:
    """The superbill page with its stylesheet inlined, so a saved file prints styled without the app."""
    css = (data_path("templates") / "static" / "superbill.css").read_text()
    link = re.search(r'<link[^>]+href="/static/superbill\.css"[^>]*>', html)
    return html.replace(link.group(0), f"<style>\n{css}</style>") if link else html


def _tagged(row: OutboxRow) -> dict:
    resource = dict(row.payload)
    if row.fhir_id:
        resource["id"] = row.fhir_id
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), {"system": DELIVERY_TAG, "code": row.status,
                                                "display": f"{row.purpose}: {row.status}"}]
    resource["meta"] = meta
    return resource


def _resource_key(purpose: str, identifier: str) -> str:
    """One key per resource in the EHR: a retirement row updates the resource its identifier names."""
    return retired_identifier(identifier) if purpose == RETIRING else identifier


def entry_url(resource: dict) -> str:
    """A resource's fullUrl in an export: the `urn:uuid` it has in the app's transaction Bundles (so the Claim's
    references to its Observations resolve inside the export), one per resource whatever its versions."""
    try:
        return full_url(resource)
    except ValueError:  # no business identifier of the app's: by type and id, which the export always has
        return full_url_of(f"{resource.get('resourceType')}/{resource.get('id')}")


def _history_entry(row: OutboxRow, resource: dict) -> dict:
    """One version the EHR accepted, as a history Bundle lists it: how it was written and when."""
    update = "id" in (row.payload or {})  # a retirement carries the EHR's id: sent as an update
    rtype = row.resource_type
    request = ({"method": "PUT", "url": f"{rtype}/{row.payload['id']}"} if update
               else {"method": "POST", "url": rtype})
    response: dict[str, str] = {"status": "200 OK" if update else "201 Created",
                                "lastModified": row.updated_at.isoformat()}
    if row.fhir_id:
        response["location"] = f"{rtype}/{row.fhir_id}"
    return {"fullUrl": entry_url(resource), "resource": resource, "request": request, "response": response}


def export_resources(db: Session, organization_id: str, month: str, timezone: str = "UTC",
                     patients: set[str] | None = None, history: list[dict] | None = None) -> Iterator[dict]:
    """Every resource the app wrote or meant to write for a month, once each in its current state (the newest
    version the app holds), tagged with its delivery status.

    The patient of each is added to `patients` when given (for the audit event of the export). A resource that
    has had several versions (a delivered Claim later marked entered-in-error when a correction replaced it)
    appears once; every version of it the EHR accepted is added to `history`, when given, as history Bundle
    entries (`history_bundle`).

    Approved claims the EHR takes no channel for (no Claim or ChargeItem create) are exported as Claims
    tagged `export-only`: this file is how they reach billers.
    """
    in_month = (OutboxRow.organization_id == organization_id, OutboxRow.month == month)
    # First the row identities only (no payloads), to know each resource's versions before streaming them.
    versions: dict[str, list[str]] = {}
    for row_id, purpose, identifier in db.execute(
            select(OutboxRow.id, OutboxRow.purpose, OutboxRow.identifier).where(*in_month)
            .order_by(OutboxRow.created_at, OutboxRow.id)):
        versions.setdefault(_resource_key(purpose, identifier), []).append(row_id)
    current = {ids[-1] for ids in versions.values()}
    revised = {row_id for ids in versions.values() if len(ids) > 1 for row_id in ids}
    rows = db.execute(select(OutboxRow).where(*in_month)
                      .order_by(OutboxRow.created_at, OutboxRow.id).execution_options(yield_per=500)).scalars()
    sent_claims: set[str] = set()
    for row in rows:
        if row.purpose == "claim" and row.claim_id:
            sent_claims.add(row.claim_id)
        if patients is not None:
            patients.add(row.patient_id)
        resource = _tagged(row)
        if history is not None and row.id in revised and row.status == OutboxStatus.DONE:
            history.append(_history_entry(row, resource))
        if row.id in current:
            yield resource
    for stored in month_claims(db, organization_id, month):
        if stored.status == ClaimStatus.APPROVED and stored.id not in sent_claims and stored.claim.billable:
            created = (stored.reviewed_at or utcnow()).astimezone(ZoneInfo(timezone)).date()
            resource = claim_resource(stored.claim, created=created, observation_refs={}, version=stored.version)
            resource["meta"] = {"tag": [{"system": DELIVERY_TAG, "code": "export-only",
                                         "display": "claim: the EHR accepts no claim from apps"}]}
            if patients is not None:
                patients.add(stored.patient_id)
            yield resource


def export_ndjson(resources: Iterable[dict]) -> Iterator[str]:
    """One resource per line (FHIR bulk-data style)."""
    for resource in resources:
        yield json.dumps(resource, separators=(",", ":"), sort_keys=True) + "\n"


def _checked(bundle: dict) -> dict:
    try:
        check_bundle(bundle)
    except ValueError as exc:
        raise ResourceInvalid(f"The app built an invalid FHIR Bundle for the export ({exc}).",
                              "This is a bug in the app; report it with the month exported.") from exc
    return bundle


def export_bundle(resources: Iterable[dict], timestamp: datetime | None = None) -> dict:
    """A collection Bundle of the resources: no total (bdl-1), one entry per resource (bdl-7)."""
    entries = [{"fullUrl": entry_url(r), "resource": r} for r in resources]
    return _checked({"resourceType": "Bundle", "type": "collection",
                     "timestamp": (timestamp or utcnow()).isoformat(), "entry": entries})


def history_bundle(entries: Iterable[dict], timestamp: datetime | None = None) -> dict | None:
    """A history Bundle of the versions `export_resources` collected, newest first; None when there are none."""
    ordered = sorted(entries, key=lambda e: e["response"]["lastModified"], reverse=True)
    if not ordered:
        return None
    return _checked({"resourceType": "Bundle", "type": "history", "timestamp": (timestamp or utcnow()).isoformat(),
                     "total": len(ordered), "entry": ordered})
