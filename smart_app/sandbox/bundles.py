"""Batch and transaction Bundles: per-entry results for batches, all-or-nothing transactions."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl

from smart_app.sandbox.access import Access
from smart_app.sandbox.outcome import FhirError, outcome_for
from smart_app.sandbox.references import rewrite_references
from smart_app.sandbox.search import searchset_bundle
from smart_app.sandbox.service import FhirService, check_type
from smart_app.sandbox.store import new_id

# FHIR processing order inside a transaction (R4 3.1.0.11.2).
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    """One parsed bundle entry."""

    index: int
    method: str
    rtype: str
    rid: str | None
    params: list[tuple[str, str]]
    resource: dict | None
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None


def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def parse_entry(index: int, raw: object, fhir_base: str) -> Entry:
    """Validate one entry's request; 400 when it cannot be processed."""
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise FhirError(400, f"entry {index}: request is required")
    request = raw["request"]
    method = str(request.get("method", "")).upper()
    if method not in _ORDER or method in ("PATCH", "HEAD"):
        raise FhirError(400, f"entry {index}: method {method or '(none)'} is not supported")
    url = str(request.get("url", ""))
    if url.startswith(fhir_base):
        url = url[len(fhir_base):]
    path, _, query = url.lstrip("/").partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise FhirError(400, f"entry {index}: request.url {request.get('url')!r} is not supported")
    resource = raw.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise FhirError(400, f"entry {index}: a {method} needs a resource")
    if method in ("PUT", "DELETE") and len(parts) != 2:
        raise FhirError(400, f"entry {index}: conditional {method} is not supported")
    return Entry(index, method, parts[0], parts[1] if len(parts) == 2 else None,
                 parse_qsl(query), resource if isinstance(resource, dict) else None,
                 raw.get("fullUrl"), request.get("ifNoneExist"), request.get("ifMatch"))


def run_entry(service: FhirService, access: Access, entry: Entry, fhir_base: str,
              rid: str | None = None, check_refs: bool = True) -> dict:
    """Execute one entry and describe the outcome as a response entry."""
    check_type(entry.rtype)
    if entry.method == "GET":
        if entry.rid:
            resource = service.read(access, entry.rtype, entry.rid)
        else:
            result = service.search(access, entry.rtype, entry.params)
            resource = searchset_bundle(result, f"{fhir_base}/{entry.rtype}", entry.params)
        return {"resource": resource, "response": {"status": _status(200)}}
    if entry.method == "DELETE":
        service.delete(access, entry.rtype, entry.rid or "")
        return {"response": {"status": _status(204)}}
    assert entry.resource is not None
    if entry.resource.get("resourceType") != entry.rtype:
        raise FhirError(400, f"resourceType {entry.resource.get('resourceType')!r} does not "
                             f"match the request url type {entry.rtype!r}")
    if entry.method == "POST":
        status, saved = service.create(access, entry.resource, entry.if_none_exist, rid,
                                       check_refs)
    else:
        status, saved = service.update(access, entry.rtype, entry.rid or "", entry.resource,
                                       entry.if_match, check_refs)
    version = saved["meta"]["versionId"]
    return {
        "fullUrl": f"{fhir_base}/{saved['resourceType']}/{saved['id']}",
        "resource": saved,
        "response": {
            "status": _status(status),
            "location": f"{saved['resourceType']}/{saved['id']}/_history/{version}",
            "etag": f'W/"{version}"',
            "lastModified": saved["meta"]["lastUpdated"],
        },
    }


def _error_entry(error: FhirError) -> dict:
    return {"response": {"status": _status(error.status), "outcome": outcome_for(error)}}


def process_bundle(service: FhirService, access: Access, body: object, fhir_base: str) -> dict:
    """Answer a batch or transaction Bundle with its -response Bundle."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FhirError(400, "POST to the FHIR base takes a Bundle")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise FhirError(400, f"Bundle.type must be batch or transaction, not {kind!r}")
    service.profile.require_bundle(kind)
    raw_entries = body.get("entry") or []
    if not isinstance(raw_entries, list):
        raise FhirError(400, "Bundle.entry must be a list")
    if kind == "batch":
        entries = []
        for index, raw in enumerate(raw_entries):
            try:
                entry = parse_entry(index, raw, fhir_base)
                with service.store.db.transaction():
                    entries.append(run_entry(service, access, entry, fhir_base))
            except FhirError as exc:
                entries.append(_error_entry(exc))
        return {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
    return _transaction(service, access, raw_entries, fhir_base)


def _transaction(service: FhirService, access: Access, raw_entries: list,
                 fhir_base: str) -> dict:
    entries = [parse_entry(i, raw, fhir_base) for i, raw in enumerate(raw_entries)]
    _reject_duplicates(entries)
    responses: dict[int, dict] = {}
    with service.store.db.transaction():
        targets: dict[str, str] = {}
        allocated: dict[int, str] = {}
        for entry in entries:
            if entry.method == "POST":
                allocated[entry.index] = _resolve_post(service, entry)
                if entry.full_url:
                    targets[entry.full_url] = f"{entry.rtype}/{allocated[entry.index]}"
            elif entry.method == "PUT" and entry.full_url:
                targets[entry.full_url] = f"{entry.rtype}/{entry.rid}"
        for entry in entries:
            if entry.resource is not None:
                entry.resource = rewrite_references(copy.deepcopy(entry.resource), targets.get)
        written = []
        for entry in sorted(entries, key=lambda e: (_ORDER[e.method], e.index)):
            try:
                responses[entry.index] = run_entry(service, access, entry, fhir_base,
                                                   allocated.get(entry.index), check_refs=False)
            except FhirError as exc:
                exc.diagnostics = f"entry {entry.index}: {exc.diagnostics}"
                raise
            if entry.method in ("POST", "PUT"):
                written.append((entry.index, responses[entry.index]["resource"]))
        for index, resource in written:
            try:
                service.check_references(resource)
            except FhirError as exc:
                exc.diagnostics = f"entry {index}: {exc.diagnostics}"
                raise
    return {"resourceType": "Bundle", "type": "transaction-response",
            "entry": [responses[e.index] for e in entries]}


def _resolve_post(service: FhirService, entry: Entry) -> str:
    """The id a POST entry will have: an existing match (ifNoneExist) or a fresh one."""
    check_type(entry.rtype)
    if entry.if_none_exist and service.honours_if_none_exist(entry.rtype, entry.if_none_exist):
        matches = service.match_existing(entry.rtype, entry.if_none_exist)
        if len(matches) > 1:
            raise FhirError(412, f"entry {entry.index}: ifNoneExist {entry.if_none_exist!r} "
                                 "matches more than one resource")
        if matches:
            return str(matches[0]["id"])
    return new_id()


def _reject_duplicates(entries: list[Entry]) -> None:
    seen_urls: set[str] = set()
    seen_targets: set[str] = set()
    for entry in entries:
        if entry.full_url:
            if entry.full_url in seen_urls:
                raise FhirError(400, f"entry {entry.index}: fullUrl {entry.full_url} repeats")
            seen_urls.add(entry.full_url)
        if entry.method in ("PUT", "DELETE"):
            target = f"{entry.rtype}/{entry.rid}"
            if target in seen_targets:
                raise FhirError(409, f"entry {entry.index}: {target} is changed twice")
            seen_targets.add(target)
