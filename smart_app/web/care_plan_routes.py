"""The care-plan editor in the chart: a draft seeded from the EHR's problems and a condition's template, saved by
the care team, signed by the billing practitioner; every version listed (`ledger.care_plans`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.billing.practitioners import known_people
from smart_app.db import transaction
from smart_app.ehr.chart import Problem
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
    seed,
    suggested,
    to_form,
)
from smart_app.rules.facts import Condition
from smart_app.statuses import CarePlanStatus
from smart_app.web.api import parse
from smart_app.web.api_models import CarePlanDraft, CarePlanSign
from smart_app.web.authorization import principal
from smart_app.web.orgs import org_today
from smart_app.web.patient_view import PatientView, build_patient_view
from smart_app.web.session_transport import csrf_token
from smart_app.web.templating import TEMPLATES, ctx


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


def _condition(problem: Problem) -> Condition:
    icd = next((c.split(" ", 1)[1] for c in problem.codes if c.startswith("ICD-10-CM ")), None)
    return Condition(icd, None, "active", id=problem.id, display=problem.display)


async def _page(request: Request) -> CarePlanPage:
    who = principal(request)
    app = ctx(request)
    view = await build_patient_view(app, who)
    templates = load_templates()

    def read() -> tuple[list[CarePlanVersion], dict[str, str]]:
        with transaction(app.sessions) as db:
            people = known_people(db, who.organization.id)
            return plan_versions(db, who.organization.id, who.patient_id), {
                ref: ", ".join(part for part in (p.name, p.credentials) if part) or ref for ref, p in people.items()}

    versions, names = await run_in_threadpool(read)
    conditions = [_condition(p) for p in view.summary.problems]
    asked = request.query_params.get("template", "")
    latest = versions[0] if versions else None
    if asked in templates or latest is None:
        key = asked if asked in templates else suggested(templates, conditions) or next(iter(templates))
        fields = to_form(seed(templates[key], conditions, view.today))
        source = f"the {templates[key].title.lower()} template and the chart's active problems"
    else:
        key, fields = latest.template, to_form(latest.content)
        source = f"version {latest.number}"
    in_program = any(c.key in CARE_PLAN_PROGRAMS and c.relevant for c in view.cards)
    return CarePlanPage(view=view, versions=tuple(versions), templates=tuple(templates.values()), template=key,
                        fields=fields, seeded_from=source, in_program=in_program,
                        may_sign=view.is_billing_practitioner and latest is not None
                        and latest.status is CarePlanStatus.DRAFT, names=names)


async def care_plan_page(request: Request) -> Response:
    """The editor, whole or (fragment=1) its main part for the page's script to swap in."""
    who = principal(request)
    page = await _page(request)
    template = "care_plan_main.html" if request.query_params.get("fragment") else "care_plan.html"
    return TEMPLATES.TemplateResponse(request, template, {
        "page": page, "view": page.view, "summary": page.view.summary, "labels": LABELS, "handle": who.handle,
        "csrf": csrf_token(ctx(request).settings, who.session.id_hash)})


async def draft_create(request: Request) -> Response:
    """Save the editor's fields as a new draft version."""
    who = principal(request)
    body = await parse(request, CarePlanDraft)
    fields = body.model_dump()

    def write() -> CarePlanVersion:
        with transaction(ctx(request).sessions) as db:
            return save_draft(db, who.organization.id, who.patient_id, from_form(fields),
                              template=body.template, by=who.performer)

    version = await run_in_threadpool(write)
    return JSONResponse({"care_plan": {"id": version.id, "version": version.number, "status": version.status.value},
                         "message": f"Saved as draft version {version.number}, with your name. The billing "
                                    "practitioner signs it to establish the plan."}, status_code=201)


async def draft_sign(request: Request) -> Response:
    """The billing practitioner establishes the latest draft."""
    who = principal(request)
    await parse(request, CarePlanSign)

    def write() -> CarePlanVersion:
        with transaction(ctx(request).sessions) as db:
            return establish(db, who.organization.id, who.patient_id, request.path_params["version_id"],
                             by=who.performer, time_role=who.roles.time_role, on=org_today(who.organization))

    version = await run_in_threadpool(write)
    due = version.review_due.isoformat() if version.review_due else ""
    return JSONResponse({"care_plan": {"id": version.id, "version": version.number, "status": version.status.value,
                                       "review_due": due},
                         "message": f"Care plan established as version {version.number}, signed by you; "
                                    f"review due {due}."}, status_code=201)


def routes() -> list[Route]:
    """The care-plan page and its API."""
    return [
        Route("/patient/care-plan", care_plan_page, methods=["GET", "POST"]),
        Route("/api/v1/care-plans", draft_create, methods=["POST"]),
        Route("/api/v1/care-plans/{version_id}/sign", draft_sign, methods=["POST"]),
    ]
