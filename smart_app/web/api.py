"""The JSON API under /api/v1: timers, entries, corrections and the month's status."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.access.roles import TimeRole
from smart_app.db import transaction
from smart_app.errors import SmartAppError
from smart_app.launch.organizations import Organization
from smart_app.ledger.entries import amend_entry, record_entry, void_entry
from smart_app.ledger.errors import LedgerNotFound, OverlapError
from smart_app.ledger.queries import counting_overlaps, get_entry, patient_month
from smart_app.ledger.timers import discard_timer, get_timer, running_timer, start_timer, stop_timer
from smart_app.ledger.values import DEFAULT_TIMER_CAP_MINUTES, Entry, EntryInput, Timer, TimerInput
from smart_app.web.api_models import EntryAmend, EntryCreate, EntryVoid, TimerStart, TimerStop
from smart_app.web.authorization import NotAllowed, Principal, principal
from smart_app.web.openapi import openapi_document
from smart_app.web.templating import ctx

Body = TypeVar("Body", bound=BaseModel)


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


async def parse(request: Request, model: type[Body]) -> Body:
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


def cap_minutes(org: Organization) -> int:
    """The organization's timer cap in minutes (`timer_cap_minutes`, default 90)."""
    value = org.extra.get("timer_cap_minutes", DEFAULT_TIMER_CAP_MINUTES)
    return value if isinstance(value, int) and value > 0 else DEFAULT_TIMER_CAP_MINUTES


def own_timer(db: Session, who: Principal, timer_id: str) -> Timer:
    """The person's own timer for this session's patient; another's, or one for another patient, is not found.

    The answer for a timer running in another patient's chart is the same as for none, so it tells nothing of
    that patient, the activity or the note.
    """
    try:
        timer = get_timer(db, who.organization.id, timer_id)
    except LedgerNotFound:
        timer = None
    if timer is None or timer.patient_id != who.patient_id or timer.performer != who.performer:
        raise LedgerNotFound(f"No timer {timer_id!r} of yours runs for this patient.",
                             "A timer started in another patient's chart is stopped from that chart; reload the page.")
    return timer


def correctable_entry(db: Session, who: Principal, entry_id: str) -> Entry:
    """An entry of this session's patient that this person may correct; another patient's entry is not found."""
    try:
        entry = get_entry(db, who.organization.id, entry_id)
    except LedgerNotFound:
        entry = None
    if entry is None or entry.patient_id != who.patient_id:
        raise LedgerNotFound(f"No time entry {entry_id!r} for this patient.",
                             "Reload the page: the entry list may be out of date.")
    if entry.performer != who.performer and who.roles.time_role is not TimeRole.BILLING_PRACTITIONER:
        raise NotAllowed("Only the person who recorded this time, or the billing practitioner, can correct it.",
                         "Ask them to correct it, or add a note for the biller.")
    return entry


def month_status(request: Request) -> Response:
    who = principal(request)
    with transaction(ctx(request).sessions) as db:
        month = dt.datetime.now(ZoneInfo(who.organization.timezone)).strftime("%Y-%m")
        ledger = patient_month(db, who.organization.id, who.patient_id, month)
        timer = running_timer(db, who.organization.id, who.user) if who.user else None
    return JSONResponse({
        "organization": who.organization.id, "patient": who.patient_id, "month": month,
        "locked": ledger.locked, "performer": who.user, "role": who.roles.time_role,
        "app_roles": sorted(who.roles.app_roles),
        "minutes_by_program": {p: sum(e.minutes for e in ledger.entries if e.program == p)
                               for p in sorted({e.program for e in ledger.entries})},
        "entries": [entry_json(e) for e in ledger.entries],
        "history": [entry_json(e) for e in ledger.history],
        "running_timer": own_patient_timer(timer, who.patient_id)})


async def timer_start(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, TimerStart)

    def start() -> Timer:
        org = who.organization
        with transaction(ctx(request).sessions) as db:
            timer = start_timer(db, TimerInput(org.id, who.patient_id, who.performer, who.time_role, body.program,
                                               body.activity, body.note), timezone=org.timezone)
        return timer

    timer = await run_in_threadpool(start)
    return JSONResponse({"timer": timer_json(timer), "message": "Timer started."}, status_code=201)


async def timer_stop(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, TimerStop)
    org, timer_id = who.organization, request.path_params["timer_id"]

    def stop() -> Response:
        with transaction(ctx(request).sessions) as db:
            own_timer(db, who, timer_id)
            result = stop_timer(db, org.id, timer_id, by=who.performer, timezone=org.timezone,
                                confirm_long=body.confirm_long, minutes=body.minutes, shared=body.shared,
                                note=body.note, cap_minutes=cap_minutes(org))
        return JSONResponse({"timer": timer_json(result.timer), "entries": [entry_json(e) for e in result.entries],
                             "message": result.message, "late": result.late})

    return await run_in_threadpool(stop)


def timer_discard(request: Request) -> Response:
    who = principal(request)
    org, timer_id = who.organization, request.path_params["timer_id"]
    with transaction(ctx(request).sessions) as db:
        own_timer(db, who, timer_id)
        timer = discard_timer(db, org.id, timer_id, by=who.performer)
    return JSONResponse({"timer": timer_json(timer), "message": "Timer discarded; no time was recorded."})


class QuickLogOverlap(OverlapError):
    """A quick log ending now would overlap the person's own recorded time: they choose, the app does not."""


def _earlier_end(db: Session, who: Principal, minutes: int, end: dt.datetime) -> dt.datetime:
    """The latest end before `end` at which `minutes` of work overlap none of the person's counted time."""
    for _ in range(20):
        clashes = counting_overlaps(db, who.organization.id, who.performer, end - dt.timedelta(minutes=minutes), end)
        if not clashes:
            break
        end = min(e.start for e in clashes)
    return end


def _quick_start(db: Session, who: Principal, body: EntryCreate) -> dt.datetime:
    """A quick log ends now (or where the person chose); an overlap is refused with the choices, never moved."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    minutes = max(body.minutes, 1)
    if body.ends_at is not None:
        return body.ends_at.astimezone(dt.UTC) - dt.timedelta(minutes=minutes)
    start = now - dt.timedelta(minutes=minutes)
    clashes = [] if body.shared else counting_overlaps(db, who.organization.id, who.performer, start, now)
    if not clashes:
        return start
    tz = ZoneInfo(who.organization.timezone)
    first = min(clashes, key=lambda e: e.start)
    earlier = _earlier_end(db, who, minutes, now)
    error = QuickLogOverlap(
        f"{minutes} minutes ending now ({now.astimezone(tz):%H:%M}) would overlap your time already recorded from "
        f"{first.start.astimezone(tz):%H:%M} to {first.end.astimezone(tz):%H:%M}, so nothing was recorded.",
        "Choose: record it ending before that time, count it as shared time (the same minutes deliberately "
        "counted twice), or correct the earlier entry.", first)
    error.choices = (
        {"label": f"Record it {earlier.astimezone(tz) - dt.timedelta(minutes=minutes):%H:%M} to "
                  f"{earlier.astimezone(tz):%H:%M}, before that time",
         "fields": {"ends_at": earlier.isoformat()}},
        {"label": "Record it ending now as shared time", "fields": {"shared": True}},
    )
    raise error


def _start(who: Principal, body: EntryCreate) -> dt.datetime:
    if body.ending_now:
        return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=max(body.minutes, 0))
    if body.date is None or body.time is None:
        raise BadRequest("date and time are required unless the entry ends now.",
                         "Give the local date (YYYY-MM-DD) and start time (HH:MM) of the work.")
    return dt.datetime.combine(body.date, body.time, tzinfo=ZoneInfo(who.organization.timezone))


async def entry_create(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, EntryCreate)
    org = who.organization

    def record() -> Response:
        with transaction(ctx(request).sessions) as db:
            start = _quick_start(db, who, body) if body.ending_now else _start(who, body)
            fields = EntryInput(org.id, who.patient_id, who.performer, who.time_role, body.program, body.activity,
                                start, body.minutes, body.note, "manual", body.shared)
            result = record_entry(db, fields, timezone=org.timezone, recorded_by=who.performer,
                                  allow_closed_month=body.allow_closed_month)
        return JSONResponse({"entries": [entry_json(e) for e in result.entries], "message": result.message,
                             "late": result.late}, status_code=201)

    return await run_in_threadpool(record)


async def entry_amend(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, EntryAmend)
    org, entry_id = who.organization, request.path_params["entry_id"]

    def amend() -> Response:
        with transaction(ctx(request).sessions) as db:
            original = correctable_entry(db, who, entry_id)
            replacement = dataclasses.replace(original.to_input(), program=body.program, activity=body.activity,
                                              start=_start(who, body), minutes=body.minutes,
                                              note=original.note if body.note is None else body.note,
                                              shared=body.shared)
            result = amend_entry(db, org.id, entry_id, replacement, by=who.performer, reason=body.reason,
                                 timezone=org.timezone, allow_closed_month=body.allow_closed_month)
        return JSONResponse({"entries": [entry_json(e) for e in result.entries], "message": result.message,
                             "late": result.late})

    return await run_in_threadpool(amend)


async def entry_void(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, EntryVoid)
    org, entry_id = who.organization, request.path_params["entry_id"]

    def void() -> Response:
        with transaction(ctx(request).sessions) as db:
            correctable_entry(db, who, entry_id)
            result = void_entry(db, org.id, entry_id, by=who.performer, reason=body.reason, timezone=org.timezone,
                                allow_closed_month=body.allow_closed_month)
        return JSONResponse({"entries": [entry_json(e) for e in result.entries], "message": result.message})

    return await run_in_threadpool(void)


def openapi(request: Request) -> Response:
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
