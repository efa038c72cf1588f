"""Enrollment beyond consent over the JSON API: `POST /api/v1/enrollment` records that a program was offered to
the session's patient, declined (date and reason) or is not for them (reason)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.db import transaction
from smart_app.ledger.enrollment import EnrollmentRecord, record_enrollment
from smart_app.ledger.validation import program_label
from smart_app.statuses import EnrollmentKind
from smart_app.web.api import parse
from smart_app.web.api_models import EnrollmentCreate
from smart_app.web.authorization import principal
from smart_app.web.templating import ctx

_SAID = {EnrollmentKind.OFFERED: "was offered", EnrollmentKind.DECLINED: "declined",
         EnrollmentKind.NOT_CANDIDATE: "is not a candidate for"}


def enrollment_json(record: EnrollmentRecord) -> dict:
    """An enrollment event as the API returns it."""
    return {"id": record.id, "program": record.program, "status": record.kind.value, "date": record.on.isoformat(),
            "reason": record.reason, "recorded_by": record.recorded_by, "recorded_at": record.recorded_at.isoformat()}


async def enrollment_create(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, EnrollmentCreate)

    def write() -> EnrollmentRecord:
        with transaction(ctx(request).sessions) as db:
            return record_enrollment(db, who.organization.id, who.patient_id, body.program, body.status,
                                     on=body.date, by=who.performer, reason=body.reason,
                                     timezone=who.organization.timezone)

    record = await run_in_threadpool(write)
    later = (" The consent form no longer offers it by default." if record.kind is not EnrollmentKind.OFFERED
             else "")
    return JSONResponse({"enrollment": enrollment_json(record),
                         "message": f"Recorded that the patient {_SAID[record.kind]} {program_label(record.program)} "
                                    f"on {record.on.isoformat()}, with your name.{later}"}, status_code=201)


def routes() -> list[Route]:
    """The enrollment route of /api/v1."""
    return [Route("/api/v1/enrollment", enrollment_create, methods=["POST"])]
