"""Assemble the sandbox EHR: storage, fixtures, keys and every route, as one Starlette app.

The `/_sandbox/*` endpoints are unauthenticated test hooks, on purpose: this is a local test
EHR that tests and benchmarks drive directly. They are

- `POST /_sandbox/launch`, `POST /_sandbox/revoke` (auth.py);
- `GET|DELETE /_sandbox/requests`, the request log (requestlog.py);
- `POST|GET|DELETE /_sandbox/faults`, fault injection (faults.py);
- `GET /_sandbox/resources/{type}?identifier=system|value` (any search parameters), which counts
  stored resources without a token, ignoring the EHR profile and scopes, so tests can assert
  "exactly one Claim with this business identifier" on any profile.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from smart_app.sandbox import auth, chart, discovery, faults, fhir_api
from smart_app.sandbox.authstate import AuthState
from smart_app.sandbox.config import SANDBOX_NAME, SandboxConfig
from smart_app.sandbox.db import Database
from smart_app.sandbox.faults import FaultMiddleware, FaultStore
from smart_app.sandbox.fixtures import load_fixtures
from smart_app.sandbox.jose import SigningKey
from smart_app.sandbox.outcome import FhirError, error_response
from smart_app.sandbox.requestlog import RequestLog, RequestLogMiddleware
from smart_app.sandbox.runtime import Sandbox, sandbox_of
from smart_app.sandbox.search import MAX_COUNT, run_search
from smart_app.sandbox.service import FhirService
from smart_app.sandbox.store import TYPE_RE, FhirStore


async def list_requests(request: Request) -> Response:
    """GET /_sandbox/requests: every request recorded so far."""
    return JSONResponse(sandbox_of(request).log.entries())


async def clear_requests(request: Request) -> Response:
    """DELETE /_sandbox/requests: forget the recorded requests."""
    sandbox_of(request).log.clear()
    return Response(status_code=204)


async def count_resources(request: Request) -> Response:
    """GET /_sandbox/resources/{type}?identifier=system|value: how many are stored, and which."""
    rtype = request.path_params["type"]
    if not TYPE_RE.match(rtype):
        return JSONResponse({"error": f"{rtype!r} is not a resource type"}, status_code=404)
    params = [(k, v) for k, v in request.query_params.multi_items()
              if k not in ("_count", "_offset", "_summary")]
    try:
        result = run_search(sandbox_of(request).store, rtype, [*params, ("_count", str(MAX_COUNT))])
    except FhirError as exc:
        return JSONResponse({"error": exc.diagnostics}, status_code=400)
    return JSONResponse({"resourceType": rtype, "total": result.total,
                         "ids": [r["id"] for r in result.resources]})


async def index(request: Request) -> Response:
    """GET /: where things are."""
    config = sandbox_of(request).config
    return JSONResponse({"name": SANDBOX_NAME, "fhir_base": config.fhir_base,
                         "ehr": f"{config.base_url}/ehr/",
                         "smart_configuration":
                             f"{config.fhir_base}/.well-known/smart-configuration"})


async def http_error(request: Request, exc: Exception) -> Response:
    """Unmatched routes and wrong methods: OperationOutcome under /fhir, plain text elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/fhir"):
        error = FhirError(exc.status_code, exc.detail)
        error.headers.update(exc.headers or {})
        return error_response(error)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Unexpected failures still answer FHIR clients with an OperationOutcome."""
    if request.url.path.startswith("/fhir"):
        return error_response(FhirError(500, f"internal error: {type(exc).__name__}"))
    return PlainTextResponse("Internal Server Error", status_code=500)


def build_sandbox(config: SandboxConfig) -> Sandbox:
    """Open the database, seed fixtures (only those absent) and load or create the key."""
    db = Database(config.database)
    store = FhirStore(db)
    load_fixtures(store, config.fixtures_dir, config.shift_dates)
    return Sandbox(config, db, store, FhirService(store, config.ehr_profile), AuthState(db),
                   SigningKey.load_or_create(db), RequestLog(), FaultStore(db))


def create_app(config: SandboxConfig) -> Starlette:
    """The sandbox EHR as an ASGI app serving `config.base_url`."""
    sandbox = build_sandbox(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        sandbox.db.close()

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/_sandbox/requests", list_requests, methods=["GET"]),
        Route("/_sandbox/requests", clear_requests, methods=["DELETE"]),
        Route("/_sandbox/resources/{type}", count_resources, methods=["GET"]),
        *faults.routes,
        *auth.routes,
        *chart.routes,
        *discovery.routes,  # before the FHIR routes: /fhir/metadata is not a resource type
        *fhir_api.routes,
    ]
    app = Starlette(
        routes=routes,
        # The log is outermost so it records what clients really got from a faulted request.
        middleware=[Middleware(RequestLogMiddleware, log=sandbox.log),
                    Middleware(FaultMiddleware, faults=sandbox.faults)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app
