"""FHIR R4 REST routes under /fhir: read, search, create, update, delete and bundles."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smart_app.sandbox.access import Access
from smart_app.sandbox.bundles import process_bundle
from smart_app.sandbox.dates import parse_range
from smart_app.sandbox.outcome import FhirError, error_response, fhir_response, operation_outcome
from smart_app.sandbox.runtime import Sandbox, sandbox_of
from smart_app.sandbox.scopes import resource_scopes
from smart_app.sandbox.search import searchset_bundle

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")

Handler = Callable[[Request, Sandbox, Access], Awaitable[Response]]


def access_for(request: Request, sandbox: Sandbox) -> Access:
    """The caller's Access from its bearer token; 401 when there is no live token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    grant = sandbox.auth.lookup(token.strip(), "access") if scheme.lower() == "bearer" else None
    if grant is not None:
        request.state.client_id = grant.client_id
    if sandbox.config.open:
        return Access(unrestricted=True, client_id=grant.client_id if grant else None)
    if grant is None:
        error = FhirError(401, "a valid bearer access token is required" if not token
                          else "the access token is unknown, expired or revoked", "login")
        realm = f'Bearer realm="{sandbox.config.fhir_base}"'
        error.headers["WWW-Authenticate"] = realm + (', error="invalid_token"' if token else "")
        raise error
    return Access(grant.client_id, resource_scopes(grant.scope), grant.context.patient)


def fhir_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with the injected latency, authorization and OperationOutcome errors."""

    async def endpoint(request: Request) -> Response:
        sandbox = sandbox_of(request)
        if sandbox.config.latency_ms:
            await asyncio.sleep(sandbox.config.latency_ms / 1000)
        try:
            return await handler(request, sandbox, access_for(request, sandbox))
        except FhirError as exc:
            return error_response(exc)

    return endpoint


async def read_body(request: Request) -> object:
    """The JSON body of a FHIR write; 415 for other media types, 400 for bad JSON."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in _JSON_TYPES:
        raise FhirError(415, f"only FHIR JSON is accepted, not {media}")
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise FhirError(400, f"the body is not valid JSON: {exc}") from exc


def resource_headers(sandbox: Sandbox, resource: dict, location: bool = False) -> dict[str, str]:
    """ETag, Last-Modified and (for writes) Location of a stored resource."""
    meta = resource.get("meta") or {}
    headers = {"ETag": f'W/"{meta.get("versionId", "1")}"'}
    if meta.get("lastUpdated"):
        headers["Last-Modified"] = format_datetime(parse_range(meta["lastUpdated"])[0],
                                                   usegmt=True)
    if location:
        headers["Location"] = (f"{sandbox.config.fhir_base}/{resource['resourceType']}/"
                               f"{resource['id']}/_history/{meta.get('versionId', '1')}")
    return headers


def write_response(request: Request, sandbox: Sandbox, status: int, resource: dict) -> Response:
    """A create/update answer honouring `Prefer: return=minimal|representation|OperationOutcome`."""
    headers = resource_headers(sandbox, resource, location=True)
    prefer = request.headers.get("prefer", "")
    if "return=minimal" in prefer:
        return Response(status_code=status, headers=headers)
    if "return=OperationOutcome" in prefer:
        outcome = operation_outcome(f"{resource['resourceType']}/{resource['id']} saved",
                                    "informational", "information")
        return fhir_response(outcome, status, headers)
    return fhir_response(resource, status, headers)


async def read(request: Request, sandbox: Sandbox, access: Access) -> Response:
    """GET /fhir/{type}/{id}."""
    p = request.path_params
    resource = sandbox.service.read(access, p["type"], p["id"])
    return fhir_response(resource, headers=resource_headers(sandbox, resource))


async def search(request: Request, sandbox: Sandbox, access: Access) -> Response:
    """GET /fhir/{type}?... and POST /fhir/{type}/_search."""
    rtype = request.path_params["type"]
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        params += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    result = sandbox.service.search(access, rtype, params)
    return fhir_response(searchset_bundle(result, f"{sandbox.config.fhir_base}/{rtype}", params))


async def create(request: Request, sandbox: Sandbox, access: Access) -> Response:
    """POST /fhir/{type}, with If-None-Exist for conditional create."""
    rtype = request.path_params["type"]
    body = await read_body(request)
    if not isinstance(body, dict) or body.get("resourceType") != rtype:
        raise FhirError(400, f"the body must be a {rtype} resource")
    status, resource = sandbox.service.create(
        access, body, request.headers.get("if-none-exist")
    )
    return write_response(request, sandbox, status, resource)


async def update(request: Request, sandbox: Sandbox, access: Access) -> Response:
    """PUT /fhir/{type}/{id} (update, or create with the client's id)."""
    p = request.path_params
    status, resource = sandbox.service.update(
        access, p["type"], p["id"], await read_body(request), request.headers.get("if-match")
    )
    return write_response(request, sandbox, status, resource)


async def delete(request: Request, sandbox: Sandbox, access: Access) -> Response:
    """DELETE /fhir/{type}/{id}."""
    p = request.path_params
    sandbox.service.delete(access, p["type"], p["id"])
    return Response(status_code=204)


async def bundle(request: Request, sandbox: Sandbox, access: Access) -> Response:
    """POST /fhir with a batch or transaction Bundle."""
    body = await read_body(request)
    return fhir_response(process_bundle(sandbox.service, access, body, sandbox.config.fhir_base))


routes = [
    Route("/fhir", fhir_endpoint(bundle), methods=["POST"]),
    Route("/fhir/", fhir_endpoint(bundle), methods=["POST"]),
    Route("/fhir/{type}", fhir_endpoint(search), methods=["GET"]),
    Route("/fhir/{type}", fhir_endpoint(create), methods=["POST"]),
    Route("/fhir/{type}/_search", fhir_endpoint(search), methods=["POST"]),
    Route("/fhir/{type}/{id}", fhir_endpoint(read), methods=["GET"]),
    Route("/fhir/{type}/{id}", fhir_endpoint(update), methods=["PUT"]),
    Route("/fhir/{type}/{id}", fhir_endpoint(delete), methods=["DELETE"]),
]
