"""The care-team panel pages: `GET /panel` (HTML) and `GET /panel.csv` (the same rows as CSV).

Both need the care-manager or biller role (`authorization.ROUTES`) and show only the session's
organization; a care manager who is not also a biller sees the patients they are care manager for.
The month is the organization's current month unless `?month=YYYY-MM` names
another; `?program=`, `?care_manager=` and `?enrollment=` (a status) filter the rows and the patients who
could be offered a program; the page shows `PAGE_SIZE` rows at a
time (`?page=N`), the CSV every row. What the columns and estimates mean
is in `smart_app.billing.panel`.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smart_app.access.roles import AppRole
from smart_app.billing.panel import (
    NOT_CHECKED,
    NOT_ELIGIBLE,
    Panel,
    PanelRow,
    panel_csv,
    panel_rows,
)
from smart_app.billing.pricing import organization_pricing
from smart_app.db import transaction
from smart_app.errors import SmartAppError
from smart_app.launch.organizations import Organization
from smart_app.ledger.enrollment import status_label
from smart_app.ledger.months import Month
from smart_app.ledger.validation import check_month, program_label
from smart_app.statuses import EnrollmentStatus
from smart_app.web.authorization import Principal, principal
from smart_app.web.orgs import org_today
from smart_app.web.templating import TEMPLATES, ctx

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
_PAGE = re.compile(r"[0-9]{1,6}")
# Rows per page: the panel is sorted by what needs attention, and the CSV always holds every row.
PAGE_SIZE = 200


class _BadRequest(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def _month(request: Request, today: dt.date) -> str:
    month = _param(request, "month")
    if month is None:
        return f"{today:%Y-%m}"
    try:
        return check_month(month)
    except SmartAppError as exc:
        raise _BadRequest(exc.message, exc.hint) from None


# The enrollment filter's choices, in the order a care team works through them.
ENROLLMENT_CHOICES = tuple(EnrollmentStatus)


def _enrollment(request: Request) -> str | None:
    value = _param(request, "enrollment")
    if value is not None and value not in ENROLLMENT_CHOICES:
        choices = ", ".join(f"{s.value} ({status_label(s)})" for s in ENROLLMENT_CHOICES)
        raise _BadRequest(f"Unknown enrollment status {value[:20]!r}.", f"Choose one of: {choices}; or leave it out.")
    return value


def own_patients_only(who: Principal) -> str | None:
    """The care manager whose patients the panel is limited to; None for a biller, who sees everyone."""
    if who.roles.has_any((AppRole.BILLER,)):
        return None
    return who.user or "nobody"


def _load(request: Request) -> tuple[Organization, Panel]:
    """Read the panel of the session's organization, as far as this person may see it."""
    app, who = ctx(request), principal(request)
    org = who.organization
    # For the page: the handle lets a cookie-less browser keep its session.
    request.state.handle = who.handle
    today = org_today(org)
    month = _month(request, today)
    pricing = organization_pricing(org)
    program = _param(request, "program")
    enrollment = _enrollment(request)
    mine = own_patients_only(who)
    with transaction(app.sessions) as db:
        panel = panel_rows(db, org.id, month, pricing.rule_set, today=today, timezone=org.timezone,
                           program=program,
                           care_manager=mine or _param(request, "care_manager"), pricing=pricing, keep=True,
                           enrollment=enrollment)
    if program is not None and program not in panel.programs:
        raise _BadRequest(f"Unknown program {program!r}.",
                          f"Choose one of: {', '.join(panel.programs)}, or all programs.")
    return org, panel


def _bad_request(request: Request, exc: _BadRequest) -> Response:
    return TEMPLATES.TemplateResponse(request, "error.html", {
        "title": "Bad request", "message": exc.message, "hint": exc.hint}, status_code=400)


def _query(panel: Panel, program: str | None, care_manager: str | None, page: int | None = None,
           enrollment: str | None = None) -> str:
    params = {"month": panel.month}
    if program:
        params["program"] = program
    if care_manager:
        params["care_manager"] = care_manager
    if enrollment:
        params["enrollment"] = enrollment
    if page is not None and page > 1:
        params["page"] = str(page)
    return urlencode(params)


def _page(request: Request) -> int:
    raw = _param(request, "page") or "1"
    if not _PAGE.fullmatch(raw) or int(raw) < 1:
        raise _BadRequest(f"{raw[:20]!r}{'...' if len(raw) > 20 else ''} is not a page number.",
                          "Use a whole number from 1 to 999999, or leave page out.")
    return int(raw)


def _money(amount: object) -> str:
    return f"${amount:,.2f}"


def _eligibility_text(row: PanelRow, zone: ZoneInfo) -> str:
    if row.eligibility == NOT_CHECKED or row.eligibility_as_of is None:
        return "eligibility not yet checked"
    when = row.eligibility_as_of.astimezone(zone).strftime("%b %d, %H:%M")
    prefix = "not eligible" if row.eligibility == NOT_ELIGIBLE else "eligible"
    return f"{prefix}, eligibility as of {when}"


def panel_page(request: Request) -> Response:
    try:
        page = _page(request)
        org, panel = _load(request)
    except _BadRequest as exc:
        return _bad_request(request, exc)
    program, care_manager = _param(request, "program"), _param(request, "care_manager")
    enrollment = _param(request, "enrollment")
    zone = ZoneInfo(org.timezone)
    pages = max(1, -(-len(panel.rows) // PAGE_SIZE))
    page = min(page, pages)
    start = (page - 1) * PAGE_SIZE
    return TEMPLATES.TemplateResponse(request, "panel.html", {
        "org": org, "panel": panel, "totals": panel.totals, "month_label": Month.parse(panel.month).label,
        "program": program, "care_manager": care_manager, "estimate_label": panel.totals.label,
        "rows": panel.rows[start:start + PAGE_SIZE], "page": page, "pages": pages, "first": start + 1,
        "last": min(start + PAGE_SIZE, len(panel.rows)),
        "prev_url": "/panel?" + _query(panel, program, care_manager, page - 1, enrollment) if page > 1 else None,
        "next_url": "/panel?" + _query(panel, program, care_manager, page + 1, enrollment) if page < pages else None,
        "csv_url": "/panel.csv?" + _query(panel, program, care_manager, None, enrollment),
        "enrollment": enrollment, "enrollment_choices": ENROLLMENT_CHOICES, "status_label": status_label,
        "program_label": program_label, "money": _money, "handle": request.state.handle,
        "who": principal(request), "own_only": own_patients_only(principal(request)) is not None,
        "eligibility": lambda row: _eligibility_text(row, zone)})


def csv_filename(org_id: str, month: str) -> str:
    """`panel-<org>-<month>.csv`, with anything unsafe in a header replaced."""
    return f"panel-{_UNSAFE_FILENAME.sub('-', org_id)}-{month}.csv"


def panel_csv_download(request: Request) -> Response:
    try:
        org, panel = _load(request)
    except _BadRequest as exc:
        return _bad_request(request, exc)
    return Response(panel_csv(panel), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{csv_filename(org.id, panel.month)}"'})


def routes() -> list[Route]:
    """The panel's routes, for the app to mount."""
    return [Route("/panel", panel_page, methods=["GET", "POST"]),
            Route("/panel.csv", panel_csv_download, methods=["GET", "POST"])]
