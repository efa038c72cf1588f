"""The JSON API under /api/v1: timers, entries, corrections and the month's status."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.db import transaction
from smart_app.errors import SmartAppError
from smart_app.ledger.entries import amend_entry, record_entry, void_entry
from smart_app.ledger.queries import counting_overlaps, get_entry, patient_month
from smart_app.ledger.timers import discard_timer, get_timer, running_timer, start_timer, stop_timer
from smart_app.ledger.values import DEFAULT_TIMER_CAP_MINUTES, Entry, EntryInput, Timer, TimerInput
from smart_app.web.api_auth import Caller, NotAllowed, api_caller
from smart_app.web.api_models import EntryAmend, EntryCreate, EntryVoid, TimerStart, TimerStop
from smart_app.web.openapi import openapi_document
from smart_app.web.templating import ctx


class BadRequest(SmartAppError):
    """The request body is not what the endpoint expects."""

    title = "The request could not be read"
    status_code = 422


def entry_json(entry: Entry) -> dict:
    """An entry as the API returns it."""
    data = dataclasses.asdict(entry)
    data["start"] = entry.start.isoformat()
    data["recorded_at"] = entry.recorded_at.isoformat()
    data["effective"] = entry.effective
    return data


def own_patient_timer(timer: Timer | None, patient_id: str) -> dict | None:
    """The caller's running timer; for another patient's timer only that one runs, never whose or why."""
    if timer is None or timer.patient_id == patient_id:
        return timer_json(timer)
    return {"id": timer.id, "running_for_another_patient": True, "started_at": timer.started_at.isoformat(),
            "program": timer.program}


def timer_json(timer: Timer | None) -> dict | None:
    """A timer as the API returns it."""
    if timer is None:
        return None
    data = dataclasses.asdict(timer)
    for key in ("started_at", "stopped_at"):
        data[key] = data[key].isoformat() if data[key] else None
    return data


async def parse(request: Request, model: type[BaseModel]) -> BaseModel:
    """The JSON body validated against `model`; BadRequest names the first bad field."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # also 5,000-digit numbers and deep nesting
        raise BadRequest("The request body is not JSON the app can read (malformed, nested too deeply, or with a "
                         "number too long).", "Send a JSON object.") from exc
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}.", "Correct that field and send again.") from exc


def cap_minutes(caller: Caller) -> int:
    """The organization's timer cap in minutes (default 90)."""
    return int(caller.organization.extra.get("timer_cap_minutes", DEFAULT_TIMER_CAP_MINUTES))


def _own_timer(caller: Caller, timer: Timer) -> None:
    if timer.performer != caller.performer:
        raise NotAllowed("This timer belongs to someone else.", "Only the person who started a timer can stop it.")


def _correctable(caller: Caller, entry: Entry) -> None:
    caller.require_patient(entry.patient_id)
    if entry.performer != caller.performer and caller.role != "billing-practitioner":
        raise NotAllowed("Only the person who recorded this time, or the billing practitioner, can correct it.",
                         "Ask them to correct it, or add a note for the biller.")


async def month_status(request: Request) -> Response:
    caller = await api_caller(request)
    with transaction(ctx(request).sessions) as db:
        month = dt.datetime.now(ZoneInfo(caller.organization.timezone)).strftime("%Y-%m")
        ledger = patient_month(db, caller.organization.id, caller.patient_id, month)
        timer = running_timer(db, caller.organization.id, caller.performer)
    return JSONResponse({
        "organization": caller.organization.id, "patient": caller.patient_id, "month": month,
        "locked": ledger.locked, "performer": caller.performer, "role": caller.role,
        "minutes_by_program": {p: sum(e.minutes for e in ledger.entries if e.program == p)
                               for p in sorted({e.program for e in ledger.entries})},
        "entries": [entry_json(e) for e in ledger.entries],
        "history": [entry_json(e) for e in ledger.history],
        "running_timer": own_patient_timer(timer, caller.patient_id)})


async def timer_start(request: Request) -> Response:
    caller = await api_caller(request)
    body = await parse(request, TimerStart)
    with transaction(ctx(request).sessions) as db:
        timer = start_timer(db, TimerInput(caller.organization.id, caller.patient_id, caller.performer, caller.role,
                                           body.program, body.activity, body.note),
                            timezone=caller.organization.timezone)
    return JSONResponse({"timer": timer_json(timer), "message": "Timer started."}, status_code=201)


async def timer_stop(request: Request) -> Response:
    caller = await api_caller(request)
    body = await parse(request, TimerStop)
    org = caller.organization
    with transaction(ctx(request).sessions) as db:
        _own_timer(caller, get_timer(db, org.id, request.path_params["timer_id"]))
        result = stop_timer(db, org.id, request.path_params["timer_id"], by=caller.performer, timezone=org.timezone,
                            confirm_long=body.confirm_long, minutes=body.minutes, shared=body.shared,
                            note=body.note, cap_minutes=cap_minutes(caller))
    return JSONResponse({"timer": timer_json(result.timer), "entries": [entry_json(e) for e in result.entries],
                         "message": result.message, "late": result.late})


async def timer_discard(request: Request) -> Response:
    caller = await api_caller(request)
    org = caller.organization
    with transaction(ctx(request).sessions) as db:
        _own_timer(caller, get_timer(db, org.id, request.path_params["timer_id"]))
        timer = discard_timer(db, org.id, request.path_params["timer_id"], by=caller.performer)
    return JSONResponse({"timer": timer_json(timer), "message": "Timer discarded; no time was recorded."})


def _quick_start(db: Session, caller: Caller, minutes: int) -> dt.datetime:
    """Where a quick-logged task goes: ending now, or just before the person's own time it would overlap.

    Two tasks logged one after the other both "end now"; the later click is taken as the earlier work.
    """
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    for _ in range(20):
        clashes = counting_overlaps(db, caller.organization.id, caller.performer,
                                    end - dt.timedelta(minutes=minutes), end)
        if not clashes:
            break
        end = min(e.start for e in clashes)
    return end - dt.timedelta(minutes=minutes)


def _start(caller: Caller, body: EntryCreate) -> dt.datetime:
    if body.ending_now:
        return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=max(body.minutes, 0))
    if body.date is None or body.time is None:
        raise BadRequest("date and time are required unless the entry ends now.",
                         "Give the local date (YYYY-MM-DD) and start time (HH:MM) of the work.")
    return dt.datetime.combine(body.date, body.time, tzinfo=ZoneInfo(caller.organization.timezone))


async def entry_create(request: Request) -> Response:
    caller = await api_caller(request)
    body = await parse(request, EntryCreate)
    org = caller.organization
    with transaction(ctx(request).sessions) as db:
        start = (_quick_start(db, caller, max(body.minutes, 1)) if body.ending_now and not body.shared
                 else _start(caller, body))
        fields = EntryInput(org.id, caller.patient_id, caller.performer, caller.role, body.program, body.activity,
                            start, body.minutes, body.note, "manual", body.shared)
        result = record_entry(db, fields, timezone=org.timezone, recorded_by=caller.performer,
                              allow_closed_month=body.allow_closed_month)
    return JSONResponse({"entries": [entry_json(e) for e in result.entries], "message": result.message,
                         "late": result.late}, status_code=201)


async def entry_amend(request: Request) -> Response:
    caller = await api_caller(request)
    body = await parse(request, EntryAmend)
    org = caller.organization
    entry_id = request.path_params["entry_id"]
    with transaction(ctx(request).sessions) as db:
        original = get_entry(db, org.id, entry_id)
        _correctable(caller, original)
        replacement = dataclasses.replace(original.to_input(), program=body.program, activity=body.activity,
                                          start=_start(caller, body), minutes=body.minutes, note=body.note,
                                          shared=body.shared)
        result = amend_entry(db, org.id, entry_id, replacement, by=caller.performer, reason=body.reason,
                             timezone=org.timezone, allow_closed_month=body.allow_closed_month)
    return JSONResponse({"entries": [entry_json(e) for e in result.entries], "message": result.message,
                         "late": result.late})


async def entry_void(request: Request) -> Response:
    caller = await api_caller(request)
    body = await parse(request, EntryVoid)
    org = caller.organization
    entry_id = request.path_params["entry_id"]
    with transaction(ctx(request).sessions) as db:
        _correctable(caller, get_entry(db, org.id, entry_id))
        result = void_entry(db, org.id, entry_id, by=caller.performer, reason=body.reason, timezone=org.timezone,
                            allow_closed_month=body.allow_closed_month)
    return JSONResponse({"entries": [entry_json(e) for e in result.entries], "message": result.message})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(str(request.base_url).rstrip("/")))


def routes() -> list[Route]:
    """The /api/v1 routes."""
    return [
        Route("/api/v1/openapi.json", openapi),
        Route("/api/v1/month", month_status),
        Route("/api/v1/timers", timer_start, methods=["POST"]),
        Route("/api/v1/timers/{timer_id}/stop", timer_stop, methods=["POST"]),
        Route("/api/v1/timers/{timer_id}/discard", timer_discard, methods=["POST"]),
        Route("/api/v1/entries", entry_create, methods=["POST"]),
        Route("/api/v1/entries/{entry_id}/amend", entry_amend, methods=["POST"]),
        Route("/api/v1/entries/{entry_id}/void", entry_void, methods=["POST"]),
    ]
