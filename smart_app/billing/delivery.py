"""One delivery pass of an organization's outbox to its EHR, as the plan routes it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from smart_app.billing import care_plan_share
from smart_app.billing.outbox import DeliveryReport, deliver
from smart_app.billing.plan import WritebackPlan, capabilities_for, plan_for
from smart_app.billing.supersede import months_to_sweep, supersede
from smart_app.db import in_thread, transaction
from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import EhrError
from smart_app.launch.backend import backend_token
from smart_app.launch.ehr_metadata import cached_capabilities
from smart_app.launch.organizations import Organization
from smart_app.services import AppContext


async def organization_plan(app: AppContext, org: Organization) -> tuple[EhrCapabilities, WritebackPlan]:
    """The EHR's capabilities and the write-back plan (with the organization file's overrides)."""
    caps, why = await cached_capabilities(app.sessions, app.http, org.issuer)
    if why:
        raise EhrError(f"The EHR's CapabilityStatement could not be read ({why}).",
                       "Nothing was sent; the outbox keeps everything and tries again on the next pass.")
    return caps, plan_for(caps, org.extra.get("writeback"))


async def deliver_pass(app: AppContext, org: Organization, *, lease_seconds: int = 60) -> DeliveryReport:
    """Send the organization's due outbox rows with a Backend Services token (none for open servers)."""
    token = None if org.extra.get("writeback_open") is True else await backend_token(app.launch, org)
    caps, plan = await organization_plan(app, org)
    await in_thread(_sweep, app, org, plan, capabilities_for(caps, plan).can("Goal", "create"))
    return await deliver(app.sessions, FhirClient(app.http, org.issuer, token), capabilities_for(caps, plan), org.id,
                         lease_seconds=lease_seconds)


async def deliver_rows(app: AppContext, org: Organization, row_ids: Sequence[str]) -> DeliveryReport:
    """Send just these outbox rows now (a safety alert, a signed care plan): the rest waits for its pass."""
    if not row_ids:
        return DeliveryReport()
    token = None if org.extra.get("writeback_open") is True else await backend_token(app.launch, org)
    caps, plan = await organization_plan(app, org)
    return await deliver(app.sessions, FhirClient(app.http, org.issuer, token), capabilities_for(caps, plan), org.id,
                         only=row_ids)


def _sweep(app: AppContext, org: Organization, plan: WritebackPlan, goals: bool) -> None:
    """Retire now what a replaced claim (or care plan) was sending while its successor was approved (or signed)."""
    with transaction(app.sessions) as db:
        for patient_id, month in months_to_sweep(db, org.id, can_update_claim=plan.can_update_claim):
            supersede(db, org.id, patient_id, month, can_update_claim=plan.can_update_claim)
        care_plan_share.sweep(db, org.id, org.name, plan.care_plan, goals=goals)


def report_line(report: DeliveryReport) -> str:
    """One sentence on what a pass did."""
    line = (f"{report.sent} sent, {report.already_there} already in the EHR, {report.retried} to retry, "
            f"{report.failed} failed, {report.not_accepted} not accepted by the EHR.")
    if report.paused_until is not None:
        until = report.paused_until.astimezone(UTC)
        line += (f" The EHR asked the app to slow down: the rest waits until {until:%Y-%m-%d %H:%M:%S} UTC "
                 "and goes out on the first pass after that.")
    return line
