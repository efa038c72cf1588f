"""The biller's page and API: the month's proposed claims, approve or hold, rollup, delivery, superbills."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.billing.claims import StoredClaim, claim_patient, month_claims
from smart_app.billing.delivery import deliver_pass, organization_plan, report_line
from smart_app.billing.exports import record_export, render_superbill, superbill_claims
from smart_app.billing.month_review import ClaimStanding, Problem, month_view
from smart_app.billing.outbox import deliveries_for_claims, outbox_summary, retry_failed
from smart_app.billing.plan import describe_plan
from smart_app.billing.pricing import organization_pricing
from smart_app.billing.proposal import approval_blockers
from smart_app.billing.review import Reviewer, ReviewResult, approve, hold
from smart_app.billing.rollup import run_rollup
from smart_app.billing.superbill import estimate_label, money, person
from smart_app.db import transaction
from smart_app.errors import EhrError, SmartAppError
from smart_app.ledger.months import Month
from smart_app.statuses import ClaimStatus
from smart_app.web.api import BadRequest, parse
from smart_app.web.api_models import BatchApproval, MonthRun, ReviewNote
from smart_app.web.authorization import NotAllowed, Principal, principal
from smart_app.web.orgs import org_today
from smart_app.web.session_transport import csrf_token
from smart_app.web.templating import TEMPLATES, ctx

log = logging.getLogger(__name__)
FORMATS = {"pdf": "application/pdf", "html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8"}
STATUS_TEXT = {ClaimStatus.PROPOSED: "Proposed: awaiting review", ClaimStatus.HELD: "Held",
               ClaimStatus.APPROVED: "Approved", ClaimStatus.NOTHING_BILLABLE: "Nothing billable",
               ClaimStatus.SUPERSEDED: "Superseded", ClaimStatus.REPLACED: "Replaced"}


def _month(request: Request, default: dt.date) -> str:
    raw = request.query_params.get("month") or f"{default:%Y-%m}"
    try:
        return Month.parse(raw).key
    except SmartAppError as exc:
        raise BadRequest(exc.message, exc.hint) from exc


async def billing_page(request: Request) -> Response:
    app, who = ctx(request), principal(request)
    org = who.organization
    month = _month(request, org_today(org))

    filters = {name: request.query_params.get(name, "").strip() or None for name in ("status", "program", "problem")}

    def read() -> tuple[list[StoredClaim], dict, dict]:
        with transaction(app.sessions) as db:
            claims = month_claims(db, org.id, month)
            return claims, deliveries_for_claims(db, [c.id for c in claims]), outbox_summary(db, org.id, month)

    every, deliveries, summary = await run_in_threadpool(read)
    view = month_view(every, deliveries, **filters)
    claims = list(view.claims)
    try:
        _, plan = await organization_plan(app, org)
        plan_lines, plan_problem = describe_plan(plan), None
    except (EhrError, SmartAppError) as exc:
        plan_lines, plan_problem = [], f"{exc.message} {exc.hint}"
    template = "billing_main.html" if request.query_params.get("fragment") else "billing.html"
    pricing = organization_pricing(org)
    return TEMPLATES.TemplateResponse(request, template, {
        "estimate": lambda line: money(pricing.unit(line.code, line.rate).times(line.units)) or "unknown",
        "estimate_label": estimate_label(pricing), "blockers_of": approval_blockers, "person": person,
        "org": org, "month": month, "claims": claims, "deliveries": deliveries, "summary": summary,
        "plan_lines": plan_lines, "plan_problem": plan_problem, "status_text": STATUS_TEXT,
        "billable": [c for c in every if c.claim.billable], "handle": who.handle, "who": who,
        "view": view, "filters": filters,
        "ready_count": sum(1 for c in claims if view.standings[c.id] is ClaimStanding.READY),
        "standings": list(ClaimStanding), "problems": list(Problem),
        "programs": sorted({line.program for c in every for line in c.claim.lines}),
        "csrf": csrf_token(app.settings, who.session.id_hash),
        "refresh": "/billing?" + urlencode({"fragment": 1, "month": month, **{k: v for k, v in filters.items() if v}})})


async def _send(request: Request, who: Principal) -> str:
    try:
        return report_line(await deliver_pass(ctx(request), who.organization))
    except EhrError as exc:
        # Approval stands and the outbox keeps every row; the worker or the next button press sends them.
        log.warning("write-back for %s deferred (EHR status %s)", who.organization.id, exc.http_status)
        return f"Not sent yet: {exc.message} The outbox keeps it and sends it later."


def _reviewer(who: Principal) -> Reviewer:
    if not who.user:
        raise NotAllowed("The EHR did not say who you are, so your review cannot be attributed to you.",
                         "Ask the EHR administrator to grant the openid and fhirUser scopes, then sign in again.")
    return Reviewer(who.user, who.name)


async def claim_approve(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, ReviewNote)
    app = ctx(request)
    _, plan = await organization_plan(app, who.organization)

    def review() -> ReviewResult:
        with transaction(app.sessions) as db:
            return approve(db, who.organization, request.path_params["claim_id"], by=_reviewer(who),
                           note=body.note, plan=plan)

    result = await run_in_threadpool(review)
    sent = await _send(request, who)
    return JSONResponse({"claim_id": result.claim.id, "status": result.claim.status, "queued": result.queued,
                         "message": f"{result.message} {sent}"})


async def claims_approve(request: Request) -> Response:
    """Approve several claims in one action: each is checked and audited on its own; a refused one is named."""
    who = principal(request)
    body = await parse(request, BatchApproval)
    app = ctx(request)
    _, plan = await organization_plan(app, who.organization)
    reviewer = _reviewer(who)

    def review_all() -> tuple[list[ReviewResult], list[dict[str, str]]]:
        done: list[ReviewResult] = []
        refused: list[dict[str, str]] = []
        for claim_id in dict.fromkeys(body.claim_ids):
            try:
                # One transaction per claim: a refusal leaves the others approved.
                with transaction(app.sessions) as db:
                    done.append(approve(db, who.organization, claim_id, by=reviewer, note=body.note, plan=plan))
            except SmartAppError as exc:
                with transaction(app.sessions) as db:
                    who_for = claim_patient(db, who.organization.id, claim_id)
                refused.append({"claim_id": claim_id, "patient": who_for, "why": f"{exc.message} {exc.hint}".strip()})
        return done, refused

    done, refused = await run_in_threadpool(review_all)
    sent = await _send(request, who) if done else ""
    message = f"Approved {len(done)} claim{'' if len(done) == 1 else 's'}."
    if refused:
        message += f" Not approved ({len(refused)}): " + " ".join(f"{r['patient']}: {r['why']}" for r in refused)
    return JSONResponse({"approved": [r.claim.id for r in done], "refused": refused,
                         "message": f"{message} {sent}".strip()})


async def claim_hold(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, ReviewNote)

    def review() -> ReviewResult:
        with transaction(ctx(request).sessions) as db:
            return hold(db, who.organization, request.path_params["claim_id"], by=_reviewer(who), note=body.note)

    result = await run_in_threadpool(review)
    return JSONResponse({"claim_id": result.claim.id, "status": result.claim.status, "message": result.message})


async def rollup_now(request: Request) -> Response:
    who = principal(request)
    body = await parse(request, MonthRun)
    report = await run_rollup(ctx(request), who.organization, body.month, source=body.source, by=who.user or who.name)
    problems = "; ".join(f"{p}: {m}" for p, m in report.errors[:5])
    return JSONResponse({"patients": report.patients, "new_versions": report.new_versions,
                         "errors": [{"patient": p, "message": m} for p, m in report.errors],
                         "message": f"Rollup of {body.month}: {report.patients} patients, {report.billable} with "
                                    f"billable codes, {report.new_versions} new claim versions."
                                    + (f" Problems: {problems}" if problems else "")})


async def deliver_now(request: Request) -> Response:
    return JSONResponse({"message": await _send(request, principal(request))})


async def outbox_retry(request: Request) -> Response:
    who = principal(request)

    def retry() -> int:
        with transaction(ctx(request).sessions) as db:
            return retry_failed(db, who.organization.id, [request.path_params["row_id"]])

    count = await run_in_threadpool(retry)
    sent = await _send(request, who)
    return JSONResponse({"message": f"{count} row put back to pending. {sent}"})


def superbill_download(request: Request) -> Response:
    app, who = ctx(request), principal(request)
    org = who.organization
    month = _month(request, org_today(org))
    fmt = request.path_params["fmt"]
    if fmt not in FORMATS:
        raise BadRequest(f"Unknown superbill format {fmt!r}.", "Use pdf, html or csv.")
    with transaction(app.sessions) as db:
        claims = superbill_claims(db, org, month, request.query_params.get("patient") or None,
                                  include_proposed=request.query_params.get("draft") == "1")
        record_export(db, org.id, by=who.user or who.name, what=f"superbill.{fmt}", month=month,
                      patients=[c.patient_id for c in claims])
    data = render_superbill(claims, org, month, fmt)
    name = f"superbill-{org.id}-{month}.{fmt}"
    disposition = "inline" if fmt in ("pdf", "html") else "attachment"
    return Response(data, media_type=FORMATS[fmt], headers={"Content-Disposition": f'{disposition}; filename="{name}"'})


def routes() -> list[Route]:
    """The biller's routes."""
    return [
        Route("/billing", billing_page, methods=["GET", "POST"]),
        Route("/billing/superbill.{fmt}", superbill_download, methods=["GET", "POST"]),
        Route("/api/v1/claims/approve", claims_approve, methods=["POST"]),
        Route("/api/v1/claims/{claim_id}/approve", claim_approve, methods=["POST"]),
        Route("/api/v1/claims/{claim_id}/hold", claim_hold, methods=["POST"]),
        Route("/api/v1/billing/rollup", rollup_now, methods=["POST"]),
        Route("/api/v1/billing/deliver", deliver_now, methods=["POST"]),
        Route("/api/v1/outbox/{row_id}/retry", outbox_retry, methods=["POST"]),
    ]
