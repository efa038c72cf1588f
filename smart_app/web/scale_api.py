"""Rating scales (PHQ-9, GAD-7 ...) recorded from the chart over the JSON API."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.db import transaction
from smart_app.ledger.scales import ScaleRecord, record_scale
from smart_app.rules.loader import rule_set_named
from smart_app.web.api import parse
from smart_app.web.api_models import ScaleCreate
from smart_app.web.authorization import principal
from smart_app.web.templating import ctx


def scale_json(record: ScaleRecord) -> dict:
    """A recorded scale as the API returns it."""
    return {"id": record.id, "scale": record.scale, "loinc": record.loinc, "score": record.score,
            "date": record.taken_on.isoformat(), "recorded_by": record.recorded_by, "note": record.note}


async def scale_create(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, ScaleCreate)
    org = who.organization

    def write() -> ScaleRecord:
        with transaction(ctx(request).sessions) as db:
            record = record_scale(db, rule_set_named(org.rule_set), org.id, who.patient_id, body.scale, body.score,
                                  body.date, who.performer, org.timezone, body.note)
        return record

    record = await run_in_threadpool(write)
    return JSONResponse({"scale": scale_json(record),
                         "message": f"{record.scale} score {record.score} recorded for {record.taken_on:%b %d, %Y}; "
                                    "it is written to the EHR with the month's claim."}, status_code=201)


def routes() -> list[Route]:
    """The rating-scale routes of /api/v1."""
    return [Route("/api/v1/scales", scale_create, methods=["POST"])]
