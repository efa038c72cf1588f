"""The care-plan editor in the chart: a draft seeded from a condition's template and the chart (problems,
medications, allergies, care team, recent visits; `ledger.care_plan_seed`), saved by the care team, signed by the
billing practitioner; every version listed (`ledger.care_plans`). Minutes spent on the plan are logged as time."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.access.grants import people_with_time_role
from smart_app.access.roles import TimeRole
from smart_app.billing.care_plan_pdf import care_plan_pdf
from smart_app.billing.care_plan_share import ShareStatus, plan_copy, share_status, share_version
from smart_app.billing.delivery import deliver_rows, organization_plan
from smart_app.billing.plan import capabilities_for
from smart_app.billing.practitioners import known_people
from smart_app.db import transaction, utcnow
from smart_app.ehr.care_plan_sources import chart_facts, source_requests
from smart_app.ehr.chart import Problem
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.record import read_parts
from smart_app.errors import EhrError, SmartAppError
from smart_app.launch.organizations import Organization
from smart_app.ledger.care_plan_seed import SeededLine, seed_from_chart
from smart_app.ledger.care_plans import (
    CARE_PLAN_PROGRAMS,
    LABELS,
    CarePlanVersion,
    Template,
    establish,
    from_form,
    load_templates,
    plan_versions,
    save_draft,
    suggested,
    to_form,
)
from smart_app.ledger.entries import record_entry
from smart_app.ledger.errors import LedgerNotFound
from smart_app.ledger.values import EntryInput, RecordResult
from smart_app.rules.facts import Condition
from smart_app.rules.loader import rule_set_named
from smart_app.services import AppContext
from smart_app.statuses import CarePlanStatus
from smart_app.web.api import BadRequest, parse
from smart_app.web.api_models import CarePlanDraft, CarePlanSign
from smart_app.web.authorization import Principal, principal
from smart_app.web.orgs import org_today
from smart_app.web.patient_view import PatientView, build_patient_view
from smart_app.web.session_transport import csrf_token
from smart_app.web.templating import TEMPLATES, ctx

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class CarePlanPage:
    """What the editor shows: the versions, the fields to edit and where they came from."""

    view: PatientView
    versions: tuple[CarePlanVersion, ...]
    templates: tuple[Template, ...]
    template: str
    fields: dict[str, Any]
    seeded_from: str
    in_program: bool
    may_sign: bool
    # Practitioners' names as the EHR last gave them, by reference.
    names: dict[str, str]
    # Where the established version stands with the EHR (None before any is established).
    sharing: ShareStatus | None = None
    # Where each seeded line came from, and which parts of the chart could not be read (empty for a saved version).
    seeded: tuple[SeededLine, ...] = ()
    notes: tuple[str, ...] = ()
    # The programs the minutes spent on the plan may count toward (the first is the default); empty: none applies.
    minute_programs: tuple[str, ...] = ()

    def sources(self, element: str) -> list[SeededLine]:
        """The seeded lines of one element, with where each came from."""
        return [line for line in self.seeded if line.element == element]

    def person(self, reference: str) -> str:
        """A practitioner by name and credentials where the app has read them, else by reference."""
        return self.names.get(reference, reference)

    @property
    def latest(self) -> CarePlanVersion | None:
        """The newest version (draft or established)."""
        return self.versions[0] if self.versions else None

    @property
    def established(self) -> CarePlanVersion | None:
        """The newest established version."""
        return next((v for v in self.versions if v.status is CarePlanStatus.ESTABLISHED), None)


# The ledger activity care-plan time is logged as (ledger/activities.toml).
CARE_PLAN_ACTIVITY = "care-plan-update"


def _condition(problem: Problem) -> Condition:
    icd = next((c.split(" ", 1)[1] for c in problem.codes if c.startswith("ICD-10-CM ")), None)
    try:
        onset = dt.date.fromisoformat(problem.onset) if problem.onset else None
    except ValueError:
        onset = None  # an onset the EHR gives as a year or month only: the line then has no date
    return Condition(icd, None, "active", onset=onset, id=problem.id, display=problem.display)


async def _page(request: Request) -> CarePlanPage:
    who = principal(request)
    app = ctx(request)
    org = who.organization
    templates = load_templates()
    client = FhirClient(app.http, who.session.fhir_base, who.session.access_token)
    # The page's read of the month and the plan's sources go out together, so the wait is that of the slower.
    view, (results, failures) = await asyncio.gather(
        build_patient_view(app, who),
        read_parts(client, who.session.capabilities, source_requests(who.patient_id, org_today(org))))

    def read() -> tuple[list[CarePlanVersion], dict[str, str], dict[str, str]]:
        with transaction(app.sessions) as db:
            people = known_people(db, org.id)
            granted = {ref: role.label for role in TimeRole
                       for ref in people_with_time_role(db, org.id, role, org.role_assignments)}
            return plan_versions(db, org.id, who.patient_id), {
                ref: ", ".join(part for part in (p.name, p.credentials) if part) or ref
                for ref, p in people.items()}, granted

    versions, names, granted = await run_in_threadpool(read)
    conditions = [_condition(p) for p in view.summary.problems]
    chart = chart_facts(results, failures, conditions, view.today, org.role_map, granted, org.billing_practitioner)
    asked = request.query_params.get("template", "")
    latest = versions[0] if versions else None
    seeded: tuple[SeededLine, ...] = ()
    if asked in templates or latest is None:
        key = asked if asked in templates else suggested(templates, conditions) or next(iter(templates))
        plan = seed_from_chart(templates[key], chart, view.today)
        fields, seeded = to_form(plan.content), plan.lines
        source = f"the {templates[key].title.lower()} template and the chart"
    else:
        key, fields = latest.template, to_form(latest.content)
        source = f"version {latest.number}"
    in_program = any(c.key in CARE_PLAN_PROGRAMS and c.relevant for c in view.cards)
    families = rule_set_named(org.rule_set).families
    minute_programs = tuple(dict.fromkeys(
        families[c.key].time_program for c in view.cards
        if c.key in CARE_PLAN_PROGRAMS and c.relevant and c.key in families and families[c.key].time_program))
    current = next((v for v in versions if v.status is CarePlanStatus.ESTABLISHED), None)
    return CarePlanPage(sharing=await _sharing(app, who.organization, current),
                        view=view, versions=tuple(versions), templates=tuple(templates.values()), template=key,
                        fields=fields, seeded_from=source, in_program=in_program,
                        may_sign=view.is_billing_practitioner and latest is not None
                        and latest.status is CarePlanStatus.DRAFT, names=names, seeded=seeded,
                        notes=chart.unread, minute_programs=minute_programs)


async def care_plan_page(request: Request) -> Response:
    """The editor, whole or (fragment=1) its main part for the page's script to swap in."""
    who = principal(request)
    page = await _page(request)
    template = "care_plan_main.html" if request.query_params.get("fragment") else "care_plan.html"
    return TEMPLATES.TemplateResponse(request, template, {
        "page": page, "view": page.view, "summary": page.view.summary, "labels": LABELS, "handle": who.handle,
        "csrf": csrf_token(ctx(request).settings, who.session.id_hash)})


def record_plan_time(db: Session, who: Principal, *, minutes: int | None, started_at: dt.time | None,
                     program: str, note: str) -> RecordResult | None:
    """Log the minutes spent on the plan as care-plan activity for the person, through the ledger's one way of
    recording time (overlap and month rules and all); None without minutes."""
    if not minutes:
        if started_at is not None:
            raise BadRequest("A start time was given for the time spent on the plan, but no minutes.",
                             "Enter the minutes spent on the plan, or clear the start time.")
        return None
    if not program:
        raise BadRequest("The minutes spent on the plan name no program.",
                         "Choose the program (CCM, PCM or APCM) the care-plan time counts toward.")
    org = who.organization
    if started_at is None:
        start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes)
    else:
        start = dt.datetime.combine(org_today(org), started_at, tzinfo=ZoneInfo(org.timezone))
    fields = EntryInput(org.id, who.patient_id, who.performer, who.time_role, program, CARE_PLAN_ACTIVITY, start,
                        minutes, note, "manual")
    return record_entry(db, fields, timezone=org.timezone, recorded_by=who.performer)


async def draft_create(request: Request) -> Response:
    """Save the editor's fields as a new draft version, and the minutes spent on it (if given) as time."""
    who = principal(request)
    body = await parse(request, CarePlanDraft)
    fields = body.model_dump(exclude={"minutes", "started_at", "program"})

    def write() -> tuple[CarePlanVersion, RecordResult | None]:
        # One transaction: time refused (an overlap, a closed month) saves no draft either, so nothing is half done.
        with transaction(ctx(request).sessions) as db:
            version = save_draft(db, who.organization.id, who.patient_id, from_form(fields),
                                 template=body.template, by=who.performer)
            logged = record_plan_time(db, who, minutes=body.minutes, started_at=body.started_at,
                                      program=body.program, note=f"Care plan draft version {version.number}")
            return version, logged

    version, logged = await run_in_threadpool(write)
    message = (f"Saved as draft version {version.number}, with your name. The billing practitioner signs it to "
               "establish the plan.")
    if logged is not None:
        message += " " + logged.message
    return JSONResponse({"care_plan": {"id": version.id, "version": version.number, "status": version.status.value},
                         "message": message}, status_code=201)


async def _target(app: AppContext, org: Organization) -> tuple[str | None, bool, str]:
    """Where the EHR takes a care plan (plan.care_plan), whether it takes Goals, and why neither is known when its
    capabilities could not be read."""
    try:
        caps, plan = await organization_plan(app, org)
    except EhrError as exc:
        log.warning("care plan write-back: %s", exc.message)
        return None, False, exc.message
    return plan.care_plan, capabilities_for(caps, plan).can("Goal", "create"), ""


async def _sharing(app: AppContext, org: Organization, version: CarePlanVersion | None,
                   known: tuple[str | None, bool, str] | None = None) -> ShareStatus | None:
    """Where `version` stands with the EHR; `known`: the `_target` answer the caller already has."""
    if version is None:
        return None
    target, _, why = known if known is not None else await _target(app, org)

    def read() -> ShareStatus:
        with transaction(app.sessions) as db:
            return share_status(db, version, target)

    found = await run_in_threadpool(read)
    if why and found.state == "none":
        return ShareStatus("pending", f"Not sent yet: {why} It goes with the next delivery pass.")
    return found


async def draft_sign(request: Request) -> Response:
    """The billing practitioner establishes the latest draft; the plan is queued for the EHR in the same
    transaction and sent at once (what the EHR does not take now goes with the next delivery pass)."""
    who = principal(request)
    app = ctx(request)
    body = await parse(request, CarePlanSign)
    known = await _target(app, who.organization)
    target, goals, why = known

    def write() -> tuple[CarePlanVersion, list[str], RecordResult | None]:
        with transaction(app.sessions) as db:
            version = establish(db, who.organization.id, who.patient_id, request.path_params["version_id"],
                                by=who.performer, time_role=who.roles.time_role, on=org_today(who.organization))
            # In the signing transaction: time refused (an overlap) leaves the plan unsigned, nothing half done.
            logged = record_plan_time(db, who, minutes=body.minutes, started_at=body.started_at,
                                      program=body.program, note=f"Care plan version {version.number} established")
            # Unknown target (capabilities unreadable): the next delivery pass's sweep queues it.
            rows = (share_version(db, version, target, practice=who.organization.name, goals=goals)
                    if not why else [])
            return version, rows, logged

    version, rows, logged = await run_in_threadpool(write)
    try:
        await deliver_rows(app, who.organization, rows)
    except SmartAppError as exc:
        # Signed and queued: the EHR or its token failed now; the outbox keeps the rows for the next pass.
        log.warning("care plan %s not sent at signing: %s", version.id, exc.message)
    sharing = await _sharing(app, who.organization, version, known)
    due = version.review_due.isoformat() if version.review_due else ""
    return JSONResponse({"care_plan": {"id": version.id, "version": version.number, "status": version.status.value,
                                       "review_due": due, "ehr": sharing.state if sharing else "none",
                                       "ehr_reference": sharing.reference if sharing else None},
                         "message": f"Care plan established as version {version.number}, signed by you; "
                                    f"review due {due}. " + (sharing.text if sharing else "")
                                    + (f" {logged.message}" if logged is not None else "")}, status_code=201)


async def patient_copy(request: Request) -> Response:
    """The patient copy of an established version as a PDF, shown inline."""
    who = principal(request)
    app = ctx(request)
    wanted = request.query_params.get("version", "")

    def build() -> tuple[bytes, int]:
        with transaction(app.sessions) as db:
            version = next((v for v in plan_versions(db, who.organization.id, who.patient_id) if v.id == wanted),
                           None)
            if version is None or version.status is not CarePlanStatus.ESTABLISHED:
                raise LedgerNotFound("No established care-plan version with that id for this patient.",
                                     "Open the care plan and use the Patient copy (PDF) link of an established "
                                     "version; a draft has no patient copy until it is signed.")
            return care_plan_pdf(plan_copy(db, who.organization.id, who.organization.name, version),
                                 generated=utcnow()), version.number

    pdf, number = await run_in_threadpool(build)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="care-plan-v{number}.pdf"', "Cache-Control": "no-store"})


def routes() -> list[Route]:
    """The care-plan page and its API."""
    return [
        Route("/patient/care-plan", care_plan_page, methods=["GET", "POST"]),
        Route("/patient/care-plan.pdf", patient_copy, methods=["GET", "POST"]),
        Route("/api/v1/care-plans", draft_create, methods=["POST"]),
        Route("/api/v1/care-plans/{version_id}/sign", draft_sign, methods=["POST"]),
    ]
