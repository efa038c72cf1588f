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
from smart_app.billing.fhir_resources import claim_resource
from smart_app.billing.models import OutboxRow
from smart_app.billing.pricing import organization_pricing
from smart_app.billing.superbill import approval_text, superbill_csv, superbill_html, superbill_pdf
from smart_app.db import utcnow
from smart_app.ehr.care_team import relative_reference
from smart_app.errors import SmartAppError
from smart_app.launch.organizations import Organization
from smart_app.ledger.audit import EXPORTED, UNKNOWN_ACTOR, record_event
from smart_app.paths import data_path
from smart_app.statuses import ClaimStatus

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


def export_resources(db: Session, organization_id: str, month: str, timezone: str = "UTC",
                     patients: set[str] | None = None) -> Iterator[dict]:
    """Every resource the app wrote or meant to write for a month, tagged with its delivery status; the patient of
    each is added to `patients` when given (for the audit event of the export).

    Approved claims the EHR takes no channel for (no Claim or ChargeItem create) are exported as Claims
    tagged `export-only`: this file is how they reach billers.
    """
    rows = db.execute(select(OutboxRow).where(OutboxRow.organization_id == organization_id,
                                              OutboxRow.month == month)
                      .order_by(OutboxRow.created_at, OutboxRow.id).execution_options(yield_per=500)).scalars()
    sent_claims: set[str] = set()
    for row in rows:
        if row.purpose == "claim" and row.claim_id:
            sent_claims.add(row.claim_id)
        if patients is not None:
            patients.add(row.patient_id)
        yield _tagged(row)
    for stored in month_claims(db, organization_id, month):
        if stored.status == ClaimStatus.APPROVED and stored.id not in sent_claims and stored.claim.billable:
            created = (stored.reviewed_at or utcnow()).astimezone(ZoneInfo(timezone)).date()
            resource = claim_resource(stored.claim, created=created, observation_refs={}, version=stored.version)
            resource["meta"] = {"tag": [{"system": DELIVERY_TAG, "code": "export-only",
                                         "display": "claim: the EHR accepts no claim from apps"}]}
            if patients is not None:
                patients.add(stored.patient_id)
            yield resource


def export_ndjson(resources: Iterator[dict]) -> Iterator[str]:
    """One resource per line (FHIR bulk-data style)."""
    for resource in resources:
        yield json.dumps(resource, separators=(",", ":"), sort_keys=True) + "\n"


def export_bundle(resources: Iterator[dict]) -> dict:
    """A collection Bundle of the resources."""
    entries = [{"fullUrl": f"urn:smart-app:{r['resourceType']}:{r.get('id') or i}", "resource": r}
               for i, r in enumerate(resources)]
    return {"resourceType": "Bundle", "type": "collection", "timestamp": utcnow().isoformat(),
            "total": len(entries), "entry": entries}
