"""Consent capture and chronicity attestations over the JSON API, with write-back of the Consent."""

from __future__ import annotations

import dataclasses

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.db import transaction
from smart_app.ledger.attestations import record_attestation
from smart_app.ledger.consents import ConsentInput, ConsentRecord, record_consent
from smart_app.ledger.consents import withdraw_consent as withdraw
from smart_app.web.api import parse
from smart_app.web.api_auth import api_caller
from smart_app.web.api_models import AttestationCreate, ConsentCreate, ConsentWithdraw
from smart_app.web.consent_sync import send_consent
from smart_app.web.templating import ctx


def consent_json(record: ConsentRecord) -> dict:
    """A consent as the API returns it."""
    data = dataclasses.asdict(record)
    data["obtained_on"] = record.obtained_on.isoformat()
    data["recorded_at"] = record.recorded_at.isoformat()
    data["active"] = record.active
    return data


async def consent_create(request: Request) -> Response:
    caller = await api_caller(request)
    body = await parse(request, ConsentCreate)
    app = ctx(request)
    data = ConsentInput(caller.organization.id, caller.patient_id, body.program, body.method,
                        body.explained_availability, body.explained_cost_sharing, body.explained_right_to_stop,
                        body.explained_one_practitioner, body.obtained_on, caller.performer, body.note)
    with transaction(app.sessions) as db:
        record = record_consent(db, data, timezone=caller.organization.timezone)
    record = await send_consent(app, caller.session, caller.organization, record)
    return JSONResponse({"consent": consent_json(record), "message": _saved("Consent recorded", record)},
                        status_code=201)


async def consent_withdraw(request: Request) -> Response:
    caller = await api_caller(request)
    body = await parse(request, ConsentWithdraw)
    app = ctx(request)
    with transaction(app.sessions) as db:
        record = withdraw(db, caller.organization.id, request.path_params["consent_id"], by=caller.performer,
                          on=body.on, note=body.note, method=body.method, timezone=caller.organization.timezone)
        caller.require_patient(record.patient_id)
    record = await send_consent(app, caller.session, caller.organization, record)
    return JSONResponse({"consent": consent_json(record),
                         "message": _saved("Withdrawal recorded; the program stays billable to the end of the "
                                           "month", record)})


def _saved(what: str, record: ConsentRecord) -> str:
    where = {"written": "and written to the EHR",
             "not-accepted": "in the app (this EHR does not accept Consent from apps)",
             "pending": "in the app; the EHR could not be reached, it will be sent again when you next open this "
                        "page",
             "failed": "in the app, but the EHR refused it: " + record.writeback_detail}
    return f"{what} {where.get(record.writeback_status, '')}.".replace(" .", ".")


async def attestation_create(request: Request) -> Response:
    caller = await api_caller(request)
    body = await parse(request, AttestationCreate)
    with transaction(ctx(request).sessions) as db:
        record = record_attestation(db, caller.organization.id, caller.patient_id, body.condition_id, body.code,
                                    body.chronic, caller.performer, body.note)
    verdict = "chronic" if body.chronic else "not chronic"
    return JSONResponse({"attestation": {"id": record.id, "condition_id": body.condition_id, "chronic": body.chronic},
                         "message": f"Recorded that the condition is {verdict}."}, status_code=201)


def routes() -> list[Route]:
    """The consent and attestation routes of /api/v1."""
    return [
        Route("/api/v1/consents", consent_create, methods=["POST"]),
        Route("/api/v1/consents/{consent_id}/withdraw", consent_withdraw, methods=["POST"]),
        Route("/api/v1/attestations", attestation_create, methods=["POST"]),
    ]

