"""Rate limits on the launch and API endpoints, counted in the database so every worker shares them.

Each rule is a path prefix with a limit per fixed window (`{"/launch": (30, 60)}`: 30 requests a
minute). `/launch` and `/callback` (and any other prefix) count per client address; `/api/` and every page that
needs a session (`/patient`, which reads the EHR each time, `/billing` with its superbills, `/panel`,
`/panel.csv`) count per launch session (the SHA-256 of the bearer or cookie handle, as `app_sessions` stores
it), or per client address when the request carries no handle of a live session, so made-up handles cannot buy
fresh allowances. Hospitals often send every clinician through one
address; `SMART_APP_RATE_LIMITS=/launch=300/60,...` raises a per-address limit where that is so.
The count is one atomic upsert per request into `rate_limits`:

    INSERT INTO rate_limits (key, window_start, count) VALUES (..., 1)
    ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 RETURNING count

so concurrent workers on PostgreSQL (or threads on SQLite) never lose an increment. Over the limit
the answer is 429 with `Retry-After` (seconds to the window's end): JSON under `/api/`, the app's
error page elsewhere. Rows of windows that have ended are deleted whenever a new window row is created.

The client address is the ASGI client, which `smart-app serve` rewrites from `X-Forwarded-For` only for the
proxies named in `SMART_APP_FORWARDED_ALLOW_IPS` (none by default); behind a load balancer, name it there, or
every request counts against the balancer's address.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from smart_app.billing.models import RateLimitRow
from smart_app.crypto import hash_handle
from smart_app.db import transaction, utcnow
from smart_app.dialect_upsert import upsert
from smart_app.launch.models import AppSession
from smart_app.web.session_transport import request_handle
from smart_app.web.templating import TEMPLATES

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
PAGE_PREFIX = "/patient"
BILLING_PREFIX = "/billing"  # the biller's page and its superbills (/billing/superbill.pdf)
PANEL_PREFIX = "/panel"  # the panel page
PANEL_CSV_PREFIX = "/panel.csv"
ADMIN_PREFIX = "/admin"  # the administrator's users and roles page
# Prefixes counted per launch session rather than per client address: every page that needs a session.
SESSION_PREFIXES = (API_PREFIX, PAGE_PREFIX, BILLING_PREFIX, PANEL_PREFIX, ADMIN_PREFIX)


def default_rate_limit_rules() -> dict[str, tuple[int, int]]:
    """The production limits: (requests, window in seconds) per path prefix.

    30 a minute per client address on each of `/launch`, `/signin` and `/callback` (a launch takes one of
    `/launch` or `/signin` and one or two of `/callback`),
    300 a minute per launch session on the JSON API, 60 a minute per session on the patient page (each
    load reads the patient's record from the EHR) and on the biller's page with its superbills (each reads a
    month of claims; a PDF is rendered per download), 30 a minute per session on the panel (a month of the
    whole organization) and 10 on its CSV (every row at once), 30 a minute on the administrator's page.
    """
    return {"/launch": (30, 60), "/signin": (30, 60), "/callback": (30, 60), API_PREFIX: (300, 60),
            PAGE_PREFIX: (60, 60), BILLING_PREFIX: (60, 60), PANEL_PREFIX: (30, 60), PANEL_CSV_PREFIX: (10, 60),
            ADMIN_PREFIX: (30, 60)}


@dataclass(frozen=True)
class Rule:
    """One limit: at most `limit` requests per `window` seconds on paths under `prefix`."""

    prefix: str
    limit: int
    window: int

    def matches(self, path: str) -> bool:
        """`/launch` matches `/launch` and `/launch/x`, not `/launchpad`; `/api/` matches what starts with it."""
        if self.prefix.endswith("/"):
            return path.startswith(self.prefix)
        return path == self.prefix or path.startswith(self.prefix + "/")

    @property
    def per_session(self) -> bool:
        """API calls and patient pages count per launch session; everything else per client address."""
        return self.prefix.startswith(SESSION_PREFIXES)


def parse_rules(rules: Mapping[str, tuple[int, int]]) -> tuple[Rule, ...]:
    """Validate the rules; the longest prefix comes first, so the most specific rule wins."""
    parsed = []
    for prefix, (limit, window) in rules.items():
        if not prefix.startswith("/"):
            raise ValueError(f"rate-limit prefix {prefix!r} must start with /")
        if int(limit) < 1 or int(window) < 1:
            raise ValueError(f"rate limit for {prefix!r} needs a limit and a window of at least 1")
        parsed.append(Rule(prefix, int(limit), int(window)))
    return tuple(sorted(parsed, key=lambda r: len(r.prefix), reverse=True))


def window_start(now: datetime, window: int) -> datetime:
    """The start of the fixed window holding `now`: windows are aligned to the Unix epoch."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window, UTC)


def increment(db: Session, key: str, start: datetime) -> int:
    """Count one request for `key` in the window starting at `start`; the count after it, atomically."""
    return int(upsert(db, RateLimitRow, {"key": key, "window_start": start, "count": 1}, ("key", "window_start"),
                      set_={"count": RateLimitRow.count + 1}, returning=RateLimitRow.count).scalar_one())


def sweep(sessions: sessionmaker[Session], before: datetime) -> None:
    """Delete windows that started before `before` (all ended); a failure only postpones it."""
    try:
        with transaction(sessions) as db:
            db.execute(delete(RateLimitRow).where(RateLimitRow.window_start < before))
    except SQLAlchemyError:
        # Two workers sweeping at once may trip over each other; the next new window sweeps again.
        log.info("rate-limit sweep postponed", exc_info=True)


class RateLimit:
    """ASGI middleware: count requests per rule in the database and answer 429 over the limit."""

    def __init__(self, app: ASGIApp, rules: Mapping[str, tuple[int, int]] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.app = app
        self.rules = parse_rules(default_rate_limit_rules() if rules is None else rules)
        # Which window a request falls in; tests pass a clock they move, so windows end when they say.
        self.clock = clock
        # A window started this long ago has ended under every rule.
        self.longest_window = max((r.window for r in self.rules), default=0)

    def rule_for(self, path: str) -> Rule | None:
        """The rule that governs `path`, or None (static files, health checks, JWKS: not limited)."""
        return next((r for r in self.rules if r.matches(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self.rule_for(scope["path"]) if scope["type"] == "http" else None
        if rule is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            retry_after = await run_in_threadpool(self._check, request, rule)
        except SQLAlchemyError:
            # Without its database the app cannot serve the request either; let it answer with its own error.
            log.warning("rate limit not counted: the database failed", exc_info=True)
            retry_after = None
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        await self._refuse(request, retry_after)(scope, receive, send)

    def _key(self, db: Session, request: Request, rule: Rule) -> str:
        if rule.per_session:
            handle = request_handle(request, request.app.state.ctx.settings)
            if handle:
                id_hash = hash_handle(handle)
                if db.scalar(select(AppSession.id_hash).where(AppSession.id_hash == id_hash)) is not None:
                    return f"{rule.prefix}|session:{id_hash}"
        address = request.client.host if request.client else "unknown"
        return f"{rule.prefix}|ip:{address}"

    def _check(self, request: Request, rule: Rule) -> int | None:
        """Count this request; None when it is within the limit, else the seconds until the window ends."""
        sessions = request.app.state.ctx.sessions
        now = self.clock()
        start = window_start(now, rule.window)
        with transaction(sessions) as db:
            count = increment(db, self._key(db, request, rule), start)
        if count == 1:
            # The first request of a new window: a good moment to drop windows that are over.
            sweep(sessions, now - timedelta(seconds=self.longest_window))
        if count <= rule.limit:
            return None
        ends = start + timedelta(seconds=rule.window)
        return max(1, math.ceil((ends - now).total_seconds()))

    @staticmethod
    def _refuse(request: Request, retry_after: int) -> Response:
        headers = {"Retry-After": str(retry_after), "Cache-Control": "no-store"}
        title = "Too many requests"
        message = "The app received too many requests from here in a short time, so this one was refused."
        hint = f"Wait {retry_after} seconds, then try again."
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"error": {"title": title, "message": message, "hint": hint}},
                                status_code=429, headers=headers)
        page = TEMPLATES.get_template("error.html").render(title=title, message=message, hint=hint)
        return HTMLResponse(page, status_code=429, headers=headers)
