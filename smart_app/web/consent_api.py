"""Consent capture, chronicity attestations and other evidence for the rules over the JSON API, with write-back
of the Consent."""

from __future__ import annotations

import dataclasses

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.db import transaction
from smart_app.ledger.attestations import record_attestation
from smart_app.ledger.consents import ConsentInput, ConsentRecord, record_consent
from smart_app.ledger.consents import withdraw_consent as withdraw
from smart_app.ledger.evidence import record_evidence
from smart_app.statuses import WritebackStatus
from smart_app.web.api import parse
from smart_app.web.api_models import AttestationCreate, ConsentCreate, ConsentWithdraw, EvidenceCreate
from smart_app.web.authorization import principal
from smart_app.web.consent_sync import send_consent
from smart_app.web.orgs import org_today
from smart_app.web.templating import ctx


def consent_json(record: ConsentRecord) -> dict:
    """A consent as the API returns it."""
    data = dataclasses.asdict(record)
    data["obtained_on"] = record.obtained_on.isoformat()
    data["recorded_at"] = record.recorded_at.isoformat()
    data["active"] = record.active
    return data


async def consent_create(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, ConsentCreate)
    app = ctx(request)
    data = ConsentInput(who.organization.id, who.patient_id, body.program, body.method,
                        body.explained_availability, body.explained_cost_sharing, body.explained_right_to_stop,
                        body.explained_one_practitioner, body.obtained_on, who.performer, body.note)

    def write() -> ConsentRecord:
        with transaction(app.sessions) as db:
            record = record_consent(db, data, timezone=who.organization.timezone)
        return record

    record = await send_consent(app, who.session, who.organization, await run_in_threadpool(write))
    return JSONResponse({"consent": consent_json(record), "message": _saved("Consent recorded", record)},
                        status_code=201)


async def consent_withdraw(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, ConsentWithdraw)
    app = ctx(request)

    def write() -> ConsentRecord:
        with transaction(app.sessions) as db:
            record = withdraw(db, who.organization.id, request.path_params["consent_id"], by=who.performer,
                              on=body.on, note=body.note, method=body.method, timezone=who.organization.timezone,
                              patient_id=who.patient_id)
        return record

    record = await send_consent(app, who.session, who.organization, await run_in_threadpool(write))
    return JSONResponse({"consent": consent_json(record),
                         "message": _saved("Withdrawal recorded; the program stays billable to the end of the "
                                           "month", record)})


def _saved(what: str, record: ConsentRecord) -> str:
    where = {WritebackStatus.WRITTEN: "and written to the EHR",
             WritebackStatus.NOT_ACCEPTED: "in the app (this EHR does not accept Consent from apps)",
             WritebackStatus.PENDING: "in the app; the EHR could not be reached, it will be sent again when you next "
                                      "open this page",
             WritebackStatus.FAILED: "in the app, but the EHR refused it: " + record.writeback_detail}
    return f"{what} {where.get(record.writeback_status, '')}.".replace(" .", ".")


async def attestation_create(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, AttestationCreate)

    def write() -> str:
        with transaction(ctx(request).sessions) as db:
            record = record_attestation(db, who.organization.id, who.patient_id, body.condition_id, body.code,
                                        body.chronic, who.performer, body.note)
        return record.id

    record_id = await run_in_threadpool(write)
    verdict = "chronic" if body.chronic else "not chronic"
    return JSONResponse({"attestation": {"id": record_id, "condition_id": body.condition_id, "chronic": body.chronic},
                         "message": f"Recorded that the condition is {verdict}."}, status_code=201)


# What the page says once each kind of evidence is recorded.
_RECORDED = {
    "tcm-medication-reconciliation": "Recorded the medication reconciliation",
    "tcm-contact-attempt": "Recorded the attempt to contact the patient",
    "cocm-episode-start": "Recorded the start of the CoCM episode",
    "qmb-status": "Recorded the patient's QMB status",
    "condition-high-risk": "Recorded the high-risk judgement",
    "care-plan": "Recorded the care plan on file",
}


async def evidence_create(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, EvidenceCreate)

    def write() -> str:
        with transaction(ctx(request).sessions) as db:
            record = record_evidence(db, who.organization.id, who.patient_id, body.kind, by=who.performer,
                                     subject=body.subject, on=body.date, flag=body.value, note=body.note,
                                     today=org_today(who.organization))
        return record.id

    record_id = await run_in_threadpool(write)
    return JSONResponse({"evidence": {"id": record_id, "kind": body.kind.value, "subject": body.subject},
                         "message": f"{_RECORDED[body.kind.value]}, with your name."}, status_code=201)


def routes() -> list[Route]:
    """The consent and attestation routes of /api/v1."""
    return [
        Route("/api/v1/consents", consent_create, methods=["POST"]),
        Route("/api/v1/consents/{consent_id}/withdraw", consent_withdraw, methods=["POST"]),
        Route("/api/v1/attestations", attestation_create, methods=["POST"]),
        Route("/api/v1/evidence", evidence_create, methods=["POST"]),
    ]

