"""What the launch room writes to the audit log: who launched the app, for which patient, with which scopes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from smart_app.ehr.identity import user_reference
from smart_app.launch.models import AppSession
from smart_app.ledger.audit import LAUNCH, UNKNOWN_ACTOR, record_event


def record_launch(db: Session, session: AppSession, organization_id: str) -> None:
    """Audit a completed launch from a chart, or a person's own sign-in, in the transaction that stores its session."""
    # The actor as the ledger names people (Practitioner/x), the EHR's full fhirUser beside it.
    subject = f"Patient/{session.patient_id}" if session.patient_id else f"Organization/{organization_id}"
    record_event(db, actor=user_reference(session.fhir_user) or UNKNOWN_ACTOR, action=LAUNCH, subject=subject,
                 organization_id=organization_id,
                 detail={"kind": session.kind, "patient": session.patient_id, "encounter": session.encounter_id,
                         "scope": session.scope, "fhir_user": session.fhir_user})
