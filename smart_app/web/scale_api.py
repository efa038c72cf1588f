"""Rating scales (PHQ-9, GAD-7 ...) recorded from the chart over the JSON API.

A scale with a questionnaire is recorded item by item, scored by the app and written to the EHR in the same
request (`billing.scale_writeback`); a PHQ-9 whose item 9 is answered above "Not at all" answers with a safety
alert. A total alone is still accepted (scales without a form, and API clients); it goes with the month's claim.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.billing.scale_writeback import ScaleDelivery, write_scale_now
from smart_app.db import transaction
from smart_app.ledger.scales import ScaleRecord, record_scale
from smart_app.rules.loader import rule_set_named
from smart_app.rules.questionnaires import Questionnaire, for_rule_set
from smart_app.web.api import parse
from smart_app.web.api_models import ScaleCreate
from smart_app.web.authorization import principal
from smart_app.web.scale_view import safety_alert
from smart_app.web.templating import ctx


def scale_json(record: ScaleRecord, questionnaire: Questionnaire | None = None) -> dict:
    """A recorded scale as the API returns it."""
    answer: dict = {"id": record.id, "scale": record.scale, "loinc": record.loinc, "score": record.score,
                    "date": record.taken_on.isoformat(), "recorded_by": record.recorded_by, "note": record.note,
                    "items": dict(record.items) if record.items else None}
    if questionnaire is not None and record.items:
        answer["severity"] = questionnaire.band(record.score)
    return answer


async def scale_create(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, ScaleCreate)
    org = who.organization
    app = ctx(request)
    rule_set = rule_set_named(org.rule_set)
    questionnaire = for_rule_set(rule_set).get(body.scale)

    def write() -> ScaleRecord:
        with transaction(app.sessions) as db:
            record = record_scale(db, rule_set, org.id, who.patient_id, body.scale, body.score, body.date,
                                  who.performer, org.timezone, body.note, items=body.items,
                                  questionnaire=questionnaire)
        return record

    record = await run_in_threadpool(write)
    when = f"{record.taken_on:%b %d, %Y}"
    if not record.items or questionnaire is None:
        return JSONResponse({"scale": scale_json(record), "alert": None, "ehr": None,
                             "message": f"{record.scale} score {record.score} recorded for {when}; it is written to "
                                        "the EHR with the month's claim."}, status_code=201)
    title = rule_set.rating_scales[record.scale].title
    delivery: ScaleDelivery = await write_scale_now(app, org, record, title, questionnaire)
    alert = safety_alert(record, questionnaire)
    message = (f"{record.scale} recorded for {when}: total {record.score} ({questionnaire.band(record.score)}). "
               f"{delivery.message}")
    if alert:
        message = f"{alert.summary} {message}"
    return JSONResponse({"scale": scale_json(record, questionnaire), "alert": alert.to_json() if alert else None,
                         "ehr": delivery.to_json(),
                         "message": message}, status_code=201)


def routes() -> list[Route]:
    """The rating-scale routes of /api/v1."""
    return [Route("/api/v1/scales", scale_create, methods=["POST"])]
