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
from smart_app.ledger.scales import ScaleRecord, record_scale, safety_answer
from smart_app.rules.loader import rule_set_named
from smart_app.rules.questionnaires import Questionnaire, for_rule_set
from smart_app.web.api import parse
from smart_app.web.api_models import ScaleCreate
from smart_app.web.authorization import principal
from smart_app.web.templating import ctx

CRISIS_LINE = "988 Suicide & Crisis Lifeline (call or text 988)"


def scale_json(record: ScaleRecord, questionnaire: Questionnaire | None = None) -> dict:
    """A recorded scale as the API returns it."""
    answer: dict = {"id": record.id, "scale": record.scale, "loinc": record.loinc, "score": record.score,
                    "date": record.taken_on.isoformat(), "recorded_by": record.recorded_by, "note": record.note,
                    "items": dict(record.items) if record.items else None}
    if questionnaire is not None and record.items:
        answer["severity"] = questionnaire.band(record.score)
    return answer


def safety_alert(record: ScaleRecord, questionnaire: Questionnaire | None) -> dict | None:
    """What the person must see at once when the safety item (PHQ-9 item 9) is answered above 0, else None.

    Conservative on purpose: it says what was answered and points to the practice's protocol, not a diagnosis.
    """
    score = safety_answer(record, questionnaire)
    if score is None or questionnaire is None or questionnaire.safety_item is None:
        return None
    number = questionnaire.item_number(questionnaire.safety_item)
    question = next(i.text for i in questionnaire.items if i.loinc == questionnaire.safety_item)
    answered = questionnaire.answer(score).text
    return {
        "scale": record.scale, "item": number, "question": question, "answer": answered, "score": score,
        "summary": f"Safety alert: {record.scale} item {number} (\u201c{question}\u201d) was answered "
                   f"\u201c{answered}\u201d.",
        "actions": [
            "Follow your practice's suicide-risk protocol now.",
            "Make sure a clinician assesses the patient today; if the patient is in immediate danger, call 911.",
            f"The {CRISIS_LINE} is available to the patient at any time.",
        ],
    }


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
        message = f"{alert['summary']} {message}"
    return JSONResponse({"scale": scale_json(record, questionnaire), "alert": alert, "ehr": delivery.to_json(),
                         "message": message}, status_code=201)


def routes() -> list[Route]:
    """The rating-scale routes of /api/v1."""
    return [Route("/api/v1/scales", scale_create, methods=["POST"])]
