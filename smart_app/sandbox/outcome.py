"""FHIR errors as exceptions, answered as OperationOutcome resources."""

from __future__ import annotations

from starlette.responses import JSONResponse

FHIR_JSON = "application/fhir+json"

# FHIR issue-type codes for each HTTP status we answer with.
_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    415: "not-supported",
    422: "processing",
    500: "exception",
}


class FhirError(Exception):
    """An error a FHIR interaction answers with: HTTP status plus a diagnostic message."""

    def __init__(self, status: int, diagnostics: str, code: str | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code or _ISSUE_CODES.get(status, "processing")
        self.headers: dict[str, str] = {}


def operation_outcome(diagnostics: str, code: str = "processing",
                      severity: str = "error") -> dict:
    """An OperationOutcome with a single issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def outcome_for(error: FhirError) -> dict:
    """The OperationOutcome describing `error`."""
    return operation_outcome(error.diagnostics, error.code)


def fhir_response(body: dict | None, status: int = 200,
                  headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response with the FHIR media type."""
    return JSONResponse(body, status_code=status, headers=headers, media_type=FHIR_JSON)


def error_response(error: FhirError) -> JSONResponse:
    """The HTTP answer for a FhirError."""
    return fhir_response(outcome_for(error), error.status, error.headers or None)
