"""An established care plan shared with the EHR through the outbox, once per version, and retired there when a newer
version is established.

`share_version` runs in the signing transaction (after `ledger.care_plans.establish`): it queues the version as the
write-back plan's `care_plan` target says (a CarePlan with its Goals, or a DocumentReference holding the patient
copy; nothing when the EHR takes neither), by business identifiers per version, so signing twice or retrying adds
nothing. The caller then sends those rows at once (`billing.delivery.deliver_rows`); what stays pending goes with
the next delivery pass. Older versions' resources are handled like a replaced claim's (`billing.supersede`):
- not sent yet (pending and not being sent this moment, or failed): withdrawn, never sent;
- delivered: an update queued that retires them (`care_plan_resources.RETIRED`: CarePlan revoked, Goals
  cancelled, DocumentReference superseded), and the new main resource names the old one (`replaces`/`relatesTo`);
- being sent right now: left alone; `sweep` (each delivery pass) retires it once it is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.billing.care_plan_pdf import PlanCopy, care_plan_pdf
from smart_app.billing.care_plan_resources import (
    RETIRED,
    care_plan_document,
    care_plan_resource,
    document_identifier,
    goal_resources,
    plan_identifier,
    retired_copy,
)
from smart_app.billing.facts_source import cached_facts
from smart_app.billing.fhir_resources import identifier_token
from smart_app.billing.models import OutboxRow
from smart_app.billing.outbox import RETIRING, OutgoingResource, enqueue
from smart_app.billing.practitioners import known_people
from smart_app.db import utcnow
from smart_app.ledger.care_plans import CarePlanVersion, plan_versions
from smart_app.ledger.records import CarePlanVersionRow, PatientRow
from smart_app.statuses import CarePlanStatus, OutboxStatus

PURPOSE = "care_plan"
_SYSTEMS = tuple(f"urn:smart-app:{kind}" for kind in ("care-plan", "care-plan-goal", "care-plan-document"))
_MAIN_SYSTEMS = (_SYSTEMS[0], _SYSTEMS[2])


@dataclass(frozen=True)
class ShareStatus:
    """Where a version stands with the EHR, for the care plan page: `state` is written, pending, refused or none."""

    state: str
    text: str
    reference: str | None = None


def plan_copy(db: Session, organization_id: str, practice: str, version: CarePlanVersion) -> PlanCopy:
    """The patient copy's details from what the app keeps: the patient directory and the practitioners read."""
    patient = db.get(PatientRow, (organization_id, version.patient_id))
    person = known_people(db, organization_id).get(version.written_by)
    signer = ", ".join(p for p in (person.name, person.credentials) if p) if person else ""
    return PlanCopy(version=version, practice=practice, patient_name=patient.name if patient else version.patient_id,
                    birth_date=(patient.birth_date or "") if patient else "", signer=signer or version.written_by,
                    care_manager=(patient.care_manager_name or "") if patient else "")


def _month(version: CarePlanVersion) -> str:
    assert version.established_on is not None  # only established versions are shared
    return version.established_on.strftime("%Y-%m")


def condition_references(db: Session, organization_id: str, version: CarePlanVersion) -> list[str]:
    """"Condition/<id>" of each problem in the plan that names a Condition the EHR gave (by its display or code),
    from the facts the app last read for the patient in the month the plan was established."""
    cached = cached_facts(db, organization_id, version.patient_id, _month(version))
    if cached is None:
        return []
    wanted = {p.strip().lower() for p in version.content.problems}
    refs = []
    for condition in cached[0].conditions:
        names = {(condition.display or "").strip().lower(), (condition.code or "").strip().lower()} - {""}
        if condition.id and names & wanted and f"Condition/{condition.id}" not in refs:
            refs.append(f"Condition/{condition.id}")
    return refs


def _version_of(row: OutboxRow) -> str:
    """The care-plan version id an outbox row's identifier names (value: org:version[:goal])."""
    value = row.identifier.partition("|")[2]
    parts = value.split(":")
    return parts[1] if len(parts) > 1 else ""


def _rows(db: Session, organization_id: str, patient_id: str) -> list[OutboxRow]:
    return list(db.scalars(select(OutboxRow).where(
        OutboxRow.organization_id == organization_id, OutboxRow.patient_id == patient_id,
        OutboxRow.identifier.like("urn:smart-app:care-plan%")).order_by(OutboxRow.created_at, OutboxRow.id)))


def _retire_older(db: Session, version: CarePlanVersion, now: datetime) -> tuple[dict[str, str], int]:
    """Withdraw or retire what older versions queued; the delivered main resources by type ("CarePlan/<id>") for
    the new one to name, and how many retirements were queued."""
    retiring: dict[str, list[OutgoingResource]] = {}
    replaced: dict[str, str] = {}
    for row in _rows(db, version.organization_id, version.patient_id):
        if (row.payload or {}).get("id") or _version_of(row) == version.id:
            continue  # an update (a retirement), or the current version's own
        if row.status in (OutboxStatus.PENDING, OutboxStatus.FAILED):
            if row.status == OutboxStatus.PENDING and row.leased_until is not None and row.leased_until > now:
                continue  # being sent this moment; `sweep` retires it once it is done
            row.status, row.leased_until, row.updated_at = OutboxStatus.WITHDRAWN, None, now
            row.last_error = f"Not sent: version {version.number} of the care plan replaced it."
        elif row.status == OutboxStatus.DONE and row.fhir_id and row.resource_type in RETIRED:
            if row.identifier.partition("|")[0] in _MAIN_SYSTEMS:
                replaced[row.resource_type] = f"{row.resource_type}/{row.fhir_id}"
            field, status = RETIRED[row.resource_type]
            system, _, value = row.identifier.partition("|")
            # Queued in the old row's month, so references between the old rows resolve as they did.
            retiring.setdefault(row.month, []).append(OutgoingResource(
                row.resource_type, RETIRING, system, f"{value}:{status}", retired_copy(row.payload, row.fhir_id)))
    queued = 0
    for month, resources in retiring.items():
        queued += enqueue(db, organization_id=version.organization_id, claim_id=None, patient_id=version.patient_id,
                          month=month, resources=resources, now=now + timedelta(milliseconds=1))
    return replaced, queued


def share_version(db: Session, version: CarePlanVersion, target: str | None, *, practice: str,
                  goals: bool = True, now: datetime | None = None) -> list[str]:
    """Queue an established version for the EHR as `target` ("CarePlan", "DocumentReference" or None) and retire
    older versions there; the ids of the pending rows to send now. Idempotent.

    `goals`: whether the EHR takes Goal create; without it the CarePlan goes alone (its narrative lists the goals),
    rather than waiting for Goals that never arrive."""
    if version.status is not CarePlanStatus.ESTABLISHED or target is None:
        return []
    now = now or utcnow()
    replaced, _ = _retire_older(db, version, now)
    resources: list[OutgoingResource] = []
    queued = {row.identifier for row in _rows(db, version.organization_id, version.patient_id)}
    if queued & set(_main_tokens(version)):
        pass  # queued already (signed before, or by an earlier sweep): nothing to build
    elif target == "CarePlan":
        goal_list = goal_resources(version) if goals else []
        plan = care_plan_resource(version, goal_list, conditions=condition_references(db, version.organization_id,
                                                                                      version),
                                  replaces=replaced.get("CarePlan"))
        # Goals first: the CarePlan points at them, and the outbox sends targets before what references them.
        resources = [_outgoing(goal) for goal in goal_list] + [_outgoing(plan)]
    elif target == "DocumentReference":
        pdf = care_plan_pdf(plan_copy(db, version.organization_id, practice, version), generated=now)
        resources = [_outgoing(care_plan_document(version, pdf, created=now,
                                                  replaces=replaced.get("DocumentReference")))]
    else:
        raise ValueError(f"a care plan is not written as {target}")
    if resources:
        enqueue(db, organization_id=version.organization_id, claim_id=None, patient_id=version.patient_id,
                month=_month(version), resources=resources, now=now)
    return list(pending_ids(db, version.organization_id, version.patient_id))


def _outgoing(resource: dict) -> OutgoingResource:
    identifier = resource["identifier"][0]
    return OutgoingResource(resource["resourceType"], PURPOSE, identifier["system"], identifier["value"], resource)


def _needs_work(latest_id: str, rows: Sequence[tuple[str, str, OutboxStatus]], organization_id: str) -> bool:
    """Whether a patient's plan in force is not queued yet, or an older version's row is still to withdraw or
    retire; `rows` are (identifier, purpose, status) of the patient's care-plan rows."""
    tokens = {identifier for identifier, _, _ in rows}
    plan = identifier_token(plan_identifier(organization_id, latest_id))
    document = identifier_token(document_identifier(organization_id, latest_id))
    if plan not in tokens and document not in tokens:
        return True
    for identifier, purpose, status in rows:
        if purpose == RETIRING or identifier.partition("|")[2].split(":")[1:2] == [latest_id]:
            continue
        if status in (OutboxStatus.PENDING, OutboxStatus.FAILED):
            return True
        if status == OutboxStatus.DONE and not any(f"{identifier}:{s}" in tokens for _, s in RETIRED.values()):
            return True
    return False


def sweep(db: Session, organization_id: str, practice: str, target: str | None, *, goals: bool = True,
          now: datetime | None = None) -> int:
    """Each patient's plan in force queued (when signing could not queue it) and older versions withdrawn or retired
    (what was being sent at signing); how many patients needed it. Idempotent; reads only identifiers and statuses
    for the patients who need nothing."""
    if target is None:
        return 0
    now = now or utcnow()
    latest: dict[str, tuple[int, str]] = {}
    for patient_id, number, version_id in db.execute(select(
            CarePlanVersionRow.patient_id, CarePlanVersionRow.number, CarePlanVersionRow.id).where(
            CarePlanVersionRow.organization_id == organization_id,
            CarePlanVersionRow.status == CarePlanStatus.ESTABLISHED)):
        if number > latest.get(patient_id, (0, ""))[0]:
            latest[patient_id] = (number, version_id)
    rows: dict[str, list[tuple[str, str, OutboxStatus]]] = {}
    for patient_id, identifier, purpose, status in db.execute(select(
            OutboxRow.patient_id, OutboxRow.identifier, OutboxRow.purpose, OutboxRow.status).where(
            OutboxRow.organization_id == organization_id, OutboxRow.identifier.like("urn:smart-app:care-plan%"))):
        rows.setdefault(patient_id, []).append((identifier, purpose, OutboxStatus(status)))
    swept = 0
    for patient_id, (_, version_id) in sorted(latest.items()):
        if not _needs_work(version_id, rows.get(patient_id, []), organization_id):
            continue
        current = next(v for v in plan_versions(db, organization_id, patient_id) if v.id == version_id)
        share_version(db, current, target, practice=practice, goals=goals, now=now)
        swept += 1
    return swept


def _main_tokens(version: CarePlanVersion) -> tuple[str, str]:
    return (identifier_token(plan_identifier(version.organization_id, version.id)),
            identifier_token(document_identifier(version.organization_id, version.id)))


def share_status(db: Session, version: CarePlanVersion, target: str | None) -> ShareStatus:
    """Where the version stands with the EHR, in a sentence with what to do when it was refused."""
    row = db.scalars(select(OutboxRow).where(OutboxRow.organization_id == version.organization_id,
                                             OutboxRow.identifier.in_(_main_tokens(version)))
                     .order_by(OutboxRow.created_at.desc()).limit(1)).first()
    if row is None:
        if target is None:
            return ShareStatus("none", "Not sent to the EHR: it takes no care plans from apps. Print the patient "
                                       "copy for the chart.")
        return ShareStatus("pending", f"Not queued yet: it goes to the EHR as a {target} with the next delivery "
                                      "pass.")
    if row.status == OutboxStatus.DONE:
        reference = f"{row.resource_type}/{row.fhir_id}"
        with_goals = ""
        if row.resource_type == "CarePlan" and (row.payload or {}).get("goal"):
            count = len(row.payload["goal"])
            with_goals = f" with {count} Goal{'s' if count != 1 else ''}"
        return ShareStatus("written", f"Written to the EHR as {reference}{with_goals}.", reference)
    if row.status == OutboxStatus.PENDING:
        why = f" (last try: {row.last_error})" if row.last_error else ""
        return ShareStatus("pending", f"Waiting to be sent to the EHR as a {row.resource_type}{why}; the next "
                                      "delivery pass sends it.")
    if row.status == OutboxStatus.WITHDRAWN:
        return ShareStatus("none", row.last_error or "Not sent: a newer version replaced it.")
    return ShareStatus("refused", f"The EHR did not take the {row.resource_type}: {row.last_error}")


def pending_ids(db: Session, organization_id: str, patient_id: str) -> Sequence[str]:
    """The patient's care-plan rows still to send."""
    return [row.id for row in _rows(db, organization_id, patient_id) if row.status == OutboxStatus.PENDING]
