"""The OpenAPI 3.1 description of /api/v1, built from the request models so it cannot drift."""

from __future__ import annotations

from smart_app import __version__
from smart_app.web.api_models import (
    CarePlanDraft,
    CarePlanSign,
    EnrollmentCreate,
    EntryAmend,
    EntryCreate,
    EntryVoid,
    EvidenceCreate,
    ScaleCreate,
    TimerStart,
    TimerStop,
)

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["title", "message"],
    "properties": {"title": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": "string"}}}}}

# (method, path, summary, request model, success status)
OPERATIONS = [
    ("get", "/api/v1/month", "This month's entries, corrections and running timer for the session's patient",
     None, "200"),
    ("post", "/api/v1/timers", "Start a timer (one running per person)", TimerStart, "201"),
    ("post", "/api/v1/timers/{timer_id}/stop", "Stop a timer and record its minutes", TimerStop, "200"),
    ("post", "/api/v1/timers/{timer_id}/discard", "Stop a timer without recording time", None, "200"),
    ("post", "/api/v1/entries", "Record time manually", EntryCreate, "201"),
    ("post", "/api/v1/entries/{entry_id}/amend", "Replace an entry with a correction", EntryAmend, "200"),
    ("post", "/api/v1/entries/{entry_id}/void", "Cancel an entry", EntryVoid, "200"),
    ("post", "/api/v1/enrollment", "Record that a program was offered to the patient, declined (with the reason) or is "
     "not for them (with the reason), attributed and audited", EnrollmentCreate, "201"),
    ("post", "/api/v1/scales", "Record a validated rating scale administered to the patient: PHQ-9 and GAD-7 item "
     "by item (scored by the app and written to the EHR at once; a safety alert for PHQ-9 item 9), others as a total",
     ScaleCreate, "201"),
    ("post", "/api/v1/evidence", "Record a fact the rules need and the EHR does not hold (a TCM step, a CoCM "
     "episode start, QMB status, a high-risk judgement, a care plan on file), attributed and audited",
     EvidenceCreate, "201"),
    ("post", "/api/v1/care-plans", "Save a draft of the comprehensive care plan (a new version, attributed and "
     "audited), with the minutes spent on it logged as care-plan time when given", CarePlanDraft, "201"),
    ("post", "/api/v1/care-plans/{version_id}/sign", "Establish the latest draft with the billing practitioner's "
     "signature (refused to anyone else)", CarePlanSign, "201"),
]
ERRORS = {"401": "No valid launch session: relaunch from the chart",
          "403": "Another patient, another person's timer, or a request without CSRF proof",
          "404": "No such timer or entry in this organization",
          "409": "Conflict: a timer is already running, overlapping time, or already corrected",
          "422": "Invalid input, with the field and what to do"}


def openapi_document(server_url: str) -> dict:
    """The OpenAPI 3.1 document for the API as served at `server_url`."""
    schemas: dict[str, dict] = {"Error": ERROR}
    paths: dict[str, dict] = {}
    for method, path, summary, model, status in OPERATIONS:
        operation: dict = {
            "summary": summary, "security": [{"launchSession": []}],
            "responses": {status: {"description": "Done", "content": {"application/json": {
                "schema": {"type": "object"}}}},
                **{code: {"description": text, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}} for code, text in ERRORS.items()}}}
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            operation["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                       for p in params]
        if model is not None:
            schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Care minutes API", "version": __version__,
                 "description": "Capture care-coordination time for the patient of the launch session. Every "
                                "call is bound to the session's organization, user and patient."},
        "servers": [{"url": server_url}],
        "components": {"schemas": schemas, "securitySchemes": {"launchSession": {
            "type": "http", "scheme": "bearer",
            "description": "The per-launch session handle the in-chart page holds (or its session cookie "
                           "plus the X-CSRF-Token header)."}}},
        "paths": paths,
    }
