"""Biller review: approve or hold a proposed claim. Approval writes, in the same transaction, the
outbox rows of everything the EHR should receive, so nothing is lost if the EHR is down."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.billing.claims import StoredClaim, approved_before, latest_version, to_stored
from smart_app.billing.fhir_resources import (
    activity_communication,
    activity_task,
    charge_item,
    claim_programs,
    claim_resource,
    full_url,
    minutes_document,
    minutes_observation,
    scale_resource,
    superbill_document,
)
from smart_app.billing.models import ClaimRow, OutboxRow
from smart_app.billing.outbox import OutgoingResource, enqueue
from smart_app.billing.plan import WritebackPlan
from smart_app.billing.pricing import organization_pricing
from smart_app.billing.proposal import approval_blockers
from smart_app.billing.superbill import approval_text, superbill_pdf
from smart_app.billing.supersede import supersede
from smart_app.db import utcnow
from smart_app.errors import SmartAppError
from smart_app.launch.organizations import Organization
from smart_app.ledger.audit import CLAIM_APPROVED, CLAIM_HELD
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.month_locks import is_locked, lock_month
from smart_app.ledger.queries import patient_month
from smart_app.ledger.scales import ScaleRecord, scales_for
from smart_app.ledger.values import Entry
from smart_app.rules.loader import rule_set_named
from smart_app.rules.questionnaires import Questionnaire, for_rule_set
from smart_app.statuses import ClaimStatus, OutboxStatus

REVIEWABLE = (ClaimStatus.PROPOSED, ClaimStatus.HELD)


class ReviewRefused(SmartAppError):
    """The claim cannot be approved or held as asked."""

    title = "The claim cannot be changed"
    status_code = 409


class SelfApprovalRefused(ReviewRefused):
    """Separation of duties: the approver recorded minutes on this claim."""

    title = "Not allowed"
    status_code = 403


@dataclass(frozen=True)
class Reviewer:
    """Who reviews a claim: their EHR user reference and their name."""

    reference: str
    name: str

    @property
    def practitioner(self) -> bool:
        """Whether the EHR knows them as a practitioner (a Claim's enterer must be one)."""
        return self.reference.startswith(("Practitioner/", "PractitionerRole/"))


@dataclass(frozen=True)
class ReviewResult:
    """The reviewed claim, and how many resources were queued for the EHR."""

    claim: StoredClaim
    queued: int
    message: str


def _outgoing(resource: dict, purpose: str) -> OutgoingResource:
    found = resource["identifier"]
    ident = next(i for i in ([found] if isinstance(found, dict) else found)
                 if str(i.get("system", "")).startswith("urn:smart-app:"))
    return OutgoingResource(resource["resourceType"], purpose, ident["system"], ident["value"], resource)


def writeback_resources(claim: StoredClaim, entries: dict[str, Entry], plan: WritebackPlan, org: Organization, *,
                        replaced_fhir_id: str | None, now: datetime, pdf: bytes,
                        replaced_superbill: str | None = None, scales: Sequence[ScaleRecord] = (),
                        titles: Mapping[str, str] | None = None,
                        questionnaires: Mapping[str, Questionnaire] | None = None,
                        enterer: Reviewer | None = None) -> list[OutgoingResource]:
    """Everything the EHR should receive for an approved claim, as the plan routes it, targets first.

    `scales`: rating scales recorded in the app in the claim's month; `titles`: scale name -> full title;
    `questionnaires`: scale name -> its questionnaire (for scales recorded item by item);
    `enterer`: who approved it (the Claim's enterer).
    """
    titles, questionnaires = titles or {}, questionnaires or {}
    value, version = claim.claim, claim.version
    out: list[OutgoingResource] = []
    observation_refs: dict[str, str] = {}
    if plan.minutes == "Observation":
        for program in claim_programs(value):
            observation = minutes_observation(value, program, version=version)
            observation_refs[program] = full_url(observation)
            out.append(_outgoing(observation, "minutes"))
    elif plan.minutes == "DocumentReference":
        out.append(_outgoing(minutes_document(value, created=now, version=version), "minutes"))
    superbill: dict | None = None
    if plan.superbill == "DocumentReference":
        # Before the Claim, which names it in supportingInfo (targets first).
        replaces_doc = f"DocumentReference/{replaced_superbill}" if replaced_superbill else None
        superbill = superbill_document(value, pdf, created=now, version=version, replaces=replaces_doc)
        out.append(_outgoing(superbill, "superbill"))
    if plan.claim == "Claim":
        replaces = f"Claim/{replaced_fhir_id}" if replaced_fhir_id else None
        created = now.astimezone(ZoneInfo(org.timezone)).date()
        entered_by = None
        if enterer is not None:
            entered_by = ({"reference": enterer.reference, "display": enterer.name} if enterer.practitioner
                          else {"display": enterer.name})
        out.append(_outgoing(claim_resource(value, created=created, observation_refs=observation_refs,
                                            replaces=replaces, version=version, enterer=entered_by,
                                            superbill_ref=full_url(superbill) if superbill else None), "claim"))
    elif plan.claim == "ChargeItem":
        out += [_outgoing(charge_item(value, line, version=version), "claim") for line in value.lines]
    used = [entries[i] for line in value.lines for i in line.entry_ids if i in entries]
    for entry in dict((e.id, e) for e in used).values():
        if plan.activity == "Task":
            out.append(_outgoing(activity_task(entry, month=claim.month), "activity"))
        elif plan.activity == "Communication":
            out.append(_outgoing(activity_communication(entry, month=claim.month), "activity"))
    if plan.scale:
        # Rating scales given and recorded in the app this month: the EHR should hold them too. One written at
        # once (web.scale_writeback) carries the same identifier, so the outbox skips it here.
        out += [_outgoing(scale_resource(plan.scale, scale, titles.get(scale.scale, scale.scale),
                                         questionnaires.get(scale.scale)), "scale") for scale in scales]
    return out


def _reviewable(db: Session, organization_id: str, claim_id: str) -> ClaimRow:
    row = db.get(ClaimRow, claim_id)
    if row is None or row.organization_id != organization_id:
        raise ReviewRefused("No such claim in this organization.", "Reload the biller page.")
    newest = latest_version(db, organization_id, row.patient_id, row.month)
    if newest is not None and newest.id != row.id:
        raise ReviewRefused(f"This is version {row.version}; version {newest.version} replaced it.",
                            "Reload the biller page and review the newest version.")
    if row.status not in REVIEWABLE:
        raise ReviewRefused(f"This claim is {row.status}; only proposed or held claims can be reviewed.",
                            "Nothing to do: reload the biller page to see where it stands.")
    return row


def _delivered_id(db: Session, claim_id: str, purpose: str, resource_type: str) -> str | None:
    """The EHR's id of what a claim version delivered for `purpose` as `resource_type`, if it was delivered."""
    return db.scalar(select(OutboxRow.fhir_id).where(
        OutboxRow.claim_id == claim_id, OutboxRow.purpose == purpose, OutboxRow.resource_type == resource_type,
        OutboxRow.status == OutboxStatus.DONE).limit(1))


def _refuse_future_service_date(stored: StoredClaim, org: Organization, now: datetime) -> None:
    """A claim is not written back before its date of service (the organization's `service_date` setting)."""
    latest = max(line.service_date for line in stored.claim.lines)
    today = now.astimezone(ZoneInfo(org.timezone)).date()
    if latest > today:
        raise ReviewRefused(
            f"This claim's date of service is {latest:%b %d, %Y}, after today: the organization bills on the "
            "last day of the service month, so it cannot be approved yet.",
            f"Approve it on or after {latest:%b %d}. Where the payer lets a month's care management be billed once "
            "its minutes are met (CMS's CCM FAQ does), set service_date = \"threshold-met\" in the organization "
            "file.")


def _refuse_own_minutes(stored: StoredClaim, entries: Mapping[str, Entry], by: Reviewer, org: Organization) -> None:
    """Separation of duties: nobody approves a claim carrying their own minutes, unless the organization allows it."""
    if org.allow_self_approval:
        return
    own = sum(entries[i].minutes for i in {i for line in stored.claim.lines for i in line.entry_ids}
              if i in entries and entries[i].performer == by.reference)
    if own:
        raise SelfApprovalRefused(
            f"This claim carries {own} minutes you recorded yourself, and nobody approves a claim with their own "
            "time.", "Ask another biller to approve it. A one-person practice may set allow_self_approval = true "
                     "in its organization file.")


def approve(db: Session, org: Organization, claim_id: str, *, by: Reviewer, note: str, plan: WritebackPlan,
            now: datetime | None = None) -> ReviewResult:
    """Approve a claim: mark it, lock its month, and queue its write-back in one transaction."""
    now = now or utcnow()
    row = _reviewable(db, org.id, claim_id)
    stored = to_stored(row)
    if not stored.claim.billable:
        raise ReviewRefused("Nothing is billable on this claim.", "Hold it with a note instead, if needed.")
    _refuse_future_service_date(stored, org, now)
    blockers = approval_blockers(stored.claim)
    if blockers:
        raise ReviewRefused("This claim cannot be approved: " + "; ".join(blockers) + ".",
                            "Record what is missing in the chart (or the EHR), run the rollup again, and approve "
                            "the new version; or hold this one with a note.")
    entries = {e.id: e for e in patient_month(db, org.id, row.patient_id, row.month).history}
    _refuse_own_minutes(stored, entries, by, org)
    replaced = approved_before(db, stored)
    replaced_fhir_id = _delivered_id(db, replaced.id, "claim", "Claim") if replaced else None
    replaced_superbill = _delivered_id(db, replaced.id, "superbill", "DocumentReference") if replaced else None
    approval = approval_text(by.name, now, org.timezone)
    pdf = superbill_pdf([stored.claim], organization_name=org.name, month=row.month, generated=now,
                        pricing=organization_pricing(org), approvals={stored.claim.patient_id: approval})
    rule_set = rule_set_named(org.rule_set)
    resources = writeback_resources(stored, entries, plan, org, replaced_fhir_id=replaced_fhir_id,
                                    replaced_superbill=replaced_superbill, now=now, pdf=pdf,
                                    scales=scales_for(db, org.id, row.patient_id, row.month),
                                    titles={name: scale.title for name, scale in rule_set.rating_scales.items()},
                                    questionnaires=for_rule_set(rule_set), enterer=by)
    row.status, row.reviewed_by, row.reviewed_at, row.review_note = ClaimStatus.APPROVED, by.reference, now, note
    row.reviewed_by_name = by.name
    reviewed = [row]
    if replaced is not None:
        replaced_row = db.get(ClaimRow, replaced.id)
        if replaced_row is not None:
            replaced_row.status = ClaimStatus.REPLACED
            reviewed.append(replaced_row)
    queued = enqueue(db, organization_id=org.id, claim_id=row.id, patient_id=row.patient_id, month=row.month,
                     resources=resources, now=now)
    db.flush()
    # What the replaced version queued or sent: withdrawn if unsent, retired in the EHR if delivered.
    superseded = supersede(db, org.id, row.patient_id, row.month, can_update_claim=plan.can_update_claim, now=now)
    queued += superseded.retiring
    if not is_locked(db, org.id, row.patient_id, row.month):
        # From now on, time recorded for this patient-month is late and flagged to the biller; others stay open.
        lock_month(db, org.id, row.patient_id, row.month, by.reference, now=now)
    record_rows(db, reviewed, actor=by.reference, action=CLAIM_APPROVED, subject=f"Claim/{row.id}",
                detail={"patient": row.patient_id, "month": row.month, "version": row.version,
                        "codes": [[line.code, line.units] for line in stored.claim.lines], "queued": queued,
                        "replaces": replaced.id if replaced else None, "note": note},
                organization_id=org.id, now=now)
    db.flush()
    message = f"Approved; {queued} resource(s) queued for the EHR."
    if superseded.sentence():
        message += " Replaced version: " + superseded.sentence()
    return ReviewResult(to_stored(row), queued, message)


def hold(db: Session, org: Organization, claim_id: str, *, by: Reviewer, note: str,
         now: datetime | None = None) -> ReviewResult:
    """Hold a claim with the reason; nothing is sent."""
    if not note.strip():
        raise ReviewRefused("A hold needs a reason.", "Say what must be fixed before it can be approved.")
    now = now or utcnow()
    row = _reviewable(db, org.id, claim_id)
    row.status, row.reviewed_by, row.reviewed_at, row.review_note = ClaimStatus.HELD, by.reference, now, note
    row.reviewed_by_name = by.name
    record_rows(db, [row], actor=by.reference, action=CLAIM_HELD, subject=f"Claim/{row.id}",
                detail={"patient": row.patient_id, "month": row.month, "version": row.version, "note": note},
                organization_id=org.id, now=now)
    db.flush()
    return ReviewResult(to_stored(row), 0, "Held; nothing is sent until it is approved.")
