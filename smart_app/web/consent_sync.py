"""Sending consents captured in the app to the EHR, now or again when it was down."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from smart_app.db import transaction
from smart_app.ehr.consent_resource import consent_resource
from smart_app.ehr.consent_writeback import write_consent
from smart_app.ehr.fhir_client import FhirClient
from smart_app.launch.organizations import Organization
from smart_app.launch.sessions import ActiveSession
from smart_app.ledger.consents import ConsentRecord, mark_writeback
from smart_app.services import AppContext
from smart_app.statuses import WritebackStatus


async def send_consent(app: AppContext, session: ActiveSession, org: Organization,
                       record: ConsentRecord) -> ConsentRecord:
    """Write the consent to the EHR as a FHIR Consent and store the outcome on the row."""
    patient = f"Patient/{record.patient_id}"
    resource = consent_resource(record, patient_ref=patient, performer_ref=patient,
                                organization_ref=org.fhir_organization or None)
    client = FhirClient(app.http, session.fhir_base, session.access_token)
    outcome = await write_consent(client, session.capabilities, resource)

    def mark() -> ConsentRecord:
        with transaction(app.sessions) as db:
            return mark_writeback(db, record.id, outcome.status, outcome.detail, outcome.fhir_id)

    return await run_in_threadpool(mark)


async def send_pending_consents(app: AppContext, session: ActiveSession, org: Organization,
                                records: list[ConsentRecord]) -> None:
    """Retry consents whose write-back is still pending (the EHR was down when they were captured)."""
    for record in records:
        if record.writeback_status == WritebackStatus.PENDING:
            await send_consent(app, session, org, record)
