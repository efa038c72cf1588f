"""A rating scale recorded item by item, written to the EHR at once (a safety alert cannot wait for month end).

The scale is queued in the outbox with the identifier the month end uses for it (`urn:smart-app:scale`), as the
write-back plan routes scales, and sent now with `delivery.deliver_rows`; the month end's approval then finds it
queued and adds nothing. A safety alert the EHR refuses for good in that form is sent again as the next type of
the plan's chain the EHR accepts (Communication for Oracle Health), under its own `scale-alert` identifier. What
stays pending is retried by the worker's delivery passes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.billing.delivery import deliver_rows, organization_plan
from smart_app.billing.fhir_resources import (
    SCALE_ALERT_KIND,
    SCALE_KIND,
    business_identifier,
    identifier_token,
    scale_resource,
)
from smart_app.billing.models import OutboxRow
from smart_app.billing.outbox import OutgoingResource, enqueue
from smart_app.billing.plan import CHOICES, NOT_SENT, capabilities_for
from smart_app.db import in_thread, transaction
from smart_app.errors import ConfigError, SmartAppError
from smart_app.launch.organizations import Organization
from smart_app.ledger.scales import ScaleRecord, safety_answer
from smart_app.rules.questionnaires import Questionnaire
from smart_app.services import AppContext
from smart_app.statuses import OutboxStatus

log = logging.getLogger(__name__)
PURPOSE = "scale"


class Outcome(StrEnum):
    """Where a scale written at once stands."""

    SENT = "sent"  # in the EHR, with its id
    PENDING = "pending"  # queued; the next delivery pass (or the month's claim) sends it
    REFUSED = "refused"  # the EHR refused it for good
    NOT_SENT = "not-sent"  # this organization writes no scales back


@dataclass(frozen=True)
class ScaleDelivery:
    """Where a scale written at once stands, what happened and what to do."""

    status: Outcome
    message: str
    resource_type: str | None = None
    fhir_id: str | None = None
    # The type first tried, where a safety alert went as another type after the EHR refused it.
    refused_type: str | None = None

    def to_json(self) -> dict:
        """As the API returns it."""
        return {"status": self.status, "resource_type": self.resource_type, "id": self.fhir_id,
                "message": self.message, "refused_type": self.refused_type}


def _outgoing(resource: dict) -> OutgoingResource:
    found = resource["identifier"]
    ident = found if isinstance(found, dict) else found[0]
    return OutgoingResource(resource["resourceType"], PURPOSE, ident["system"], ident["value"], resource)


def _queue(app: AppContext, org: Organization, scale: ScaleRecord, outgoing: OutgoingResource) -> str:
    """Queue the resource (nothing is added when its identifier is already queued); its outbox row id."""
    with transaction(app.sessions) as db:
        enqueue(db, organization_id=org.id, claim_id=None, patient_id=scale.patient_id, month=scale.month,
                resources=[outgoing])
        row_id = db.scalar(select(OutboxRow.id).where(OutboxRow.organization_id == org.id,
                                                      OutboxRow.identifier == outgoing.identifier))
    if row_id is None:
        raise SmartAppError("The scale's write-back could not be queued.", "Record the scale again.")
    return str(row_id)


def _row(app: AppContext, row_id: str) -> tuple[OutboxStatus, str | None, str, str]:
    with app.sessions() as db:
        row = db.get(OutboxRow, row_id)
        if row is None:
            raise SmartAppError("The scale's write-back row vanished.", "Ask an administrator to check the outbox.")
        return row.status, row.fhir_id, row.last_error, row.resource_type


def _pending(why: str, alert: bool, resource_type: str | None = None) -> ScaleDelivery:
    act = " Tell the care team about the safety alert directly now (phone or in person)." if alert else ""
    return ScaleDelivery(Outcome.PENDING, f"Not in the EHR yet: {why} The app keeps it and sends it on the next "
                                          "delivery pass, once." + act, resource_type)


async def write_scale_now(app: AppContext, org: Organization, scale: ScaleRecord, title: str,
                          questionnaire: Questionnaire | None) -> ScaleDelivery:
    """Queue the scale as the plan routes it and send it now; for a safety alert the EHR refuses, the next type
    it accepts. Never raises for the EHR's answer: the outcome says what happened and what to do."""
    alert = safety_answer(scale, questionnaire) is not None
    try:
        caps, plan = await organization_plan(app, org)
    except SmartAppError as exc:
        log.warning("scale %s not sent at once: %s", scale.id, exc.message)
        act = " Tell the care team about the safety alert directly now (phone or in person)." if alert else ""
        return ScaleDelivery(Outcome.PENDING, f"Not in the EHR yet: what the EHR accepts could not be read "
                                              f"({exc.message}). The app keeps the scale and sends it with the "
                                              f"month's claim." + act)
    if plan.scale is None:
        return ScaleDelivery(Outcome.NOT_SENT, f"This EHR takes no rating scales from the app: {NOT_SENT[PURPOSE]}.")
    usable = capabilities_for(caps, plan)
    chain = list(CHOICES[PURPOSE])
    resource_type, kind, refused = plan.scale, SCALE_KIND, None
    while True:
        outgoing = _outgoing(scale_resource(resource_type, scale, title, questionnaire, kind=kind))
        row_id = await in_thread(_queue, app, org, scale, outgoing)
        try:
            await deliver_rows(app, org, [row_id])
        except ConfigError as exc:
            # The organization cannot write back at all (no Backend Services): waiting will not help.
            log.warning("scale %s not sent: %s", scale.id, exc.message)
            act = " Tell the care team about the safety alert directly now (phone or in person)." if alert else ""
            return ScaleDelivery(Outcome.NOT_SENT, f"Not sent to the EHR: {exc.message} {exc.hint}{act}",
                                 resource_type)
        except SmartAppError as exc:
            log.warning("scale %s not sent at once: %s", scale.id, exc.message)
            return _pending(exc.message, alert, resource_type)
        status, fhir_id, error, sent_as = await in_thread(_row, app, row_id)
        if status == OutboxStatus.DONE:
            how = f" (the EHR refused it as {refused}, so it went as a {sent_as})" if refused else ""
            return ScaleDelivery(Outcome.SENT, f"Written to the EHR as {sent_as}/{fhir_id}{how}.", sent_as, fhir_id,
                                 refused)
        if status == OutboxStatus.PENDING:
            return _pending(error or "the EHR did not answer.", alert, sent_as)
        # Refused for good (or a type the EHR takes no create for): a safety alert tries the next type it accepts.
        later = chain[chain.index(resource_type) + 1:] if resource_type in chain else []
        following = next((t for t in later if usable.can(t, "create")), None)
        if not alert or following is None:
            act = ("Tell the care team about the safety alert directly now (phone or in person), and ask the EHR "
                   "administrator why it was refused." if alert else
                   "The scale stays recorded in the app; the refusal stays in the outbox (`smart-app outbox status`) "
                   "for an administrator.")
            return ScaleDelivery(Outcome.REFUSED, f"The EHR refused the {sent_as}: {error} {act}", sent_as, None,
                                 refused)
        refused = refused or sent_as
        resource_type, kind = following, SCALE_ALERT_KIND


def delivery_states(db: Session, organization_id: str, scale_ids: Iterable[str]) -> tuple[dict[str, str], set[str]]:
    """Per app scale id, where its write-back stands in words; and the EHR ids of the resources written."""
    wanted: dict[str, str] = {}
    for scale_id in scale_ids:
        for kind in (SCALE_KIND, SCALE_ALERT_KIND):
            wanted[identifier_token(business_identifier(kind, organization_id, scale_id))] = scale_id
    states = {scale_id: "goes to the EHR with the month's claim" for scale_id in wanted.values()}
    written: set[str] = set()
    if not wanted:
        return states, written
    rows = db.scalars(select(OutboxRow).where(OutboxRow.organization_id == organization_id,
                                              OutboxRow.identifier.in_(list(wanted)))
                      .order_by(OutboxRow.created_at))
    for row in rows:
        scale_id = wanted[row.identifier]
        if row.status == OutboxStatus.DONE:
            states[scale_id] = f"in the EHR as {row.resource_type}/{row.fhir_id}"
            written.add(str(row.fhir_id))
        elif not states[scale_id].startswith("in the EHR"):
            states[scale_id] = _STATE_WORDS.get(row.status, str(row.status)).format(row.resource_type)
    return states, written


_STATE_WORDS = {OutboxStatus.PENDING: "waiting to be sent to the EHR as {} (retried automatically)",
                OutboxStatus.FAILED: "refused by the EHR as {} (see the biller page)",
                OutboxStatus.NOT_ACCEPTED: "the EHR takes no {} from apps",
                OutboxStatus.WITHDRAWN: "withdrawn"}
