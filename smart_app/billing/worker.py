"""`smart-app worker`: the background jobs of an installation, safe to run on several machines at once.

Each pass, for every organization: deliver its due outbox rows (rows are leased, so two workers never send one
twice); once the organization's month is over (day 1 after 02:00 on its own clock), roll up the previous month
once (`scheduled_runs`: the first worker inserts the job's row; a worker that finds it unfinished joins the same
rollup run and shares its batches). Every so often it also purges expired launches and sessions. SIGTERM (or
Ctrl+C) stops it after the batch or pass in hand: nothing it claimed is left half done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from smart_app.billing import batches
from smart_app.billing.delivery import deliver_pass, report_line
from smart_app.billing.models import OutboxRow, ScheduledRunRow
from smart_app.billing.rollup import BATCH, _patients_query, run_rollup
from smart_app.db import in_thread, transaction, utcnow
from smart_app.errors import SmartAppError
from smart_app.launch.organizations import Organization, list_organizations
from smart_app.launch.purge import purge_expired
from smart_app.ledger.months import Month
from smart_app.ledger.writelock import hold_key
from smart_app.services import AppContext
from smart_app.statuses import OutboxStatus

log = logging.getLogger(__name__)

MONTH_END_JOB = "month-end-rollup"
WORKER_ACTOR = "smart-app worker"
# The month-end rollup starts on day 1 at this local hour, after the night's late entries are in.
MONTH_END_HOUR = 2
PURGE_EVERY_SECONDS = 3600
_JOB_SPACE = "smart_app.billing.worker"


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker runs: pause between passes, outbox lease, where month-end facts come from."""

    interval: float = 5.0
    lease_seconds: int = 60
    rollup_source: str = "ehr"
    month_end: bool = True


def month_to_close(org: Organization, now: datetime) -> str | None:
    """The month the organization's month-end rollup is due for at `now`: the previous one, from day 1 02:00
    local time (None in the two hours before that, when the month is only just over)."""
    local = now.astimezone(ZoneInfo(org.timezone))
    if local.day == 1 and local.hour < MONTH_END_HOUR:
        return None
    return Month.parse(f"{local.year:04d}-{local.month:02d}").previous().key


def _take_month_end(app: AppContext, org: Organization, month: str, worker: str) -> str | None:
    """The rollup run this worker should work on for the month's job, or None when the job is done."""
    with transaction(app.sessions) as db:
        hold_key(db, _JOB_SPACE, f"{MONTH_END_JOB}|{org.id}|{month}")
        row = db.get(ScheduledRunRow, (MONTH_END_JOB, org.id, month))
        if row is not None:
            return None if row.finished_at is not None else row.rollup_run
        run_id = batches.open_run_in(db, org.id, month, _patients_query(org.id, month), BATCH)
        db.add(ScheduledRunRow(job=MONTH_END_JOB, organization_id=org.id, period=month, started_by=worker,
                               started_at=utcnow(), outcome="", rollup_run=run_id))
        return run_id


def _finish_month_end(app: AppContext, org: Organization, month: str, outcome: str) -> None:
    with transaction(app.sessions) as db:
        row = db.get_one(ScheduledRunRow, (MONTH_END_JOB, org.id, month))
        if row.finished_at is None:
            row.finished_at, row.outcome = utcnow(), outcome


def _has_due_rows(app: AppContext, org: Organization) -> bool:
    with transaction(app.sessions) as db:
        return db.scalar(select(OutboxRow.id).where(OutboxRow.organization_id == org.id,
                                                    OutboxRow.status == OutboxStatus.PENDING,
                                                    OutboxRow.next_attempt_at <= utcnow()).limit(1)) is not None


def _organizations(app: AppContext) -> list[Organization]:
    with transaction(app.sessions) as db:
        return list_organizations(db)


async def _month_end(app: AppContext, org: Organization, options: WorkerOptions, worker: str,
                     stopping: Callable[[], bool]) -> None:
    month = month_to_close(org, utcnow())
    if month is None:
        return
    run_id = await in_thread(_take_month_end, app, org, month, worker)
    if run_id is None:
        return
    log.info("month-end rollup of %s for %s: working on run %s", month, org.id, run_id)
    try:
        report = await run_rollup(app, org, month, source=options.rollup_source, by=WORKER_ACTOR, run_id=run_id,
                                  stop=stopping)
    except SmartAppError as exc:
        log.error("month-end rollup of %s for %s failed: %s %s Run `smart-app rollup --org %s --month %s` once "
                  "it is fixed.", month, org.id, exc.message, exc.hint, org.id, month)
        await in_thread(_finish_month_end, app, org, month, f"failed: {exc.message}")
        return
    if stopping() or await in_thread(batches.run_open, app.sessions, run_id):
        log.info("month-end rollup of %s for %s: %d batches done here; the rest is left to the next worker",
                 month, org.id, report.batches)
        return
    totals = await in_thread(batches.run_totals, app.sessions, run_id)
    outcome = (f"{totals.patients} patients, {totals.billable} billable, {totals.new_versions} new claim versions, "
               f"{totals.errors} errors")
    await in_thread(_finish_month_end, app, org, month, outcome)
    log.info("month-end rollup of %s for %s finished: %s", month, org.id, outcome)


async def _outbox(app: AppContext, org: Organization, options: WorkerOptions) -> None:
    if not await in_thread(_has_due_rows, app, org):
        return
    try:
        log.info("outbox of %s: %s", org.id, report_line(await deliver_pass(app, org,
                                                                              lease_seconds=options.lease_seconds)))
    except SmartAppError as exc:
        log.warning("outbox of %s: not sent: %s %s", org.id, exc.message, exc.hint)


async def run_worker(app: AppContext, options: WorkerOptions, stop: asyncio.Event) -> None:
    """Pass after pass until `stop` is set; the pass in hand is finished first."""
    worker = batches.worker_name()
    last_purge = 0.0
    log.info("worker %s started", worker)
    while not stop.is_set():
        for org in await in_thread(_organizations, app):
            if stop.is_set():
                break
            await _outbox(app, org, options)
            if options.month_end and not stop.is_set():
                await _month_end(app, org, options, worker, stop.is_set)
        if not stop.is_set() and time.monotonic() - last_purge >= PURGE_EVERY_SECONDS:
            log.info("%s", (await in_thread(purge_expired, app.sessions)).sentence())
            last_purge = time.monotonic()
        try:
            await asyncio.wait_for(stop.wait(), timeout=options.interval)
        except TimeoutError:
            pass
    log.info("worker %s stopped", worker)
