"""Writing a resource to the EHR at most once per business identifier, and a consent as a FHIR Consent.

`create_once` is the shared step (the consent write-back here and the month-end outbox both use it):
- Conditional create offered for the type: POST with `If-None-Exist: identifier=<system>|<value>`.
- Otherwise: search by that identifier first (trusting only results that really carry it, since servers
  ignore search parameters they do not know), create only when absent; without search, create.

`write_consent` adapts it to consents:
- No Consent create in the CapabilityStatement (Epic, Oracle Health): no request; "not-accepted",
  the app stays the record and the consent is printed on the superbill.
Outcomes: "written" (with the server's id), "failed" for a refusal (4xx: retrying will not help),
"pending" when it may work later (5xx, 408, 429, timeout, network, expired session, failed search).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.consent_resource import CONSENT_IDENTIFIER_SYSTEM
from smart_app.ehr.failures import classify_error
from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import EhrError, SessionExpired
from smart_app.statuses import WritebackStatus

NOT_ACCEPTED = ("This EHR does not accept Consent from apps; the consent is kept in the app and printed on "
                "the superbill")


@dataclass(frozen=True)
class WritebackOutcome:
    """How a write went: its status, a sentence, the EHR's id."""

    status: WritebackStatus
    detail: str
    fhir_id: str | None = None


@dataclass(frozen=True)
class CreateResult:
    """What `create_once` did: `created` False when the EHR already held the resource."""

    fhir_id: str | None
    created: bool


class DuplicateCheckFailed(EhrError):
    """The search for the identifier before a create failed; creating blindly could make a duplicate."""

    http_status: int | None = None
    outcome: str = ""


def identifier_token(system: str, value: str) -> str:
    """The `system|value` token of a business identifier."""
    return f"{system}|{value}"


def if_none_exist_criteria(system: str, value: str) -> str:
    """The If-None-Exist (or Bundle `request.ifNoneExist`) criteria matching one business identifier."""
    # Query-string syntax: escape what would split or change the value; keep `|`, `:` and `/` readable.
    return "identifier=" + quote(identifier_token(system, value), safe=":/|")


def carries_identifier(resource: dict, system: str, value: str) -> bool:
    """Whether the resource has the identifier `system|value` (a list, or one Identifier as in a
    QuestionnaireResponse)."""
    found = resource.get("identifier")
    return any(isinstance(i, dict) and i.get("system") == system and str(i.get("value")) == value
               for i in ([found] if isinstance(found, dict) else found or []))


def _business_id_or_none(resource: dict) -> str | None:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == CONSENT_IDENTIFIER_SYSTEM \
                and identifier.get("value"):
            return str(identifier["value"])
    return None


def _business_id(resource: dict) -> str:
    found = _business_id_or_none(resource)
    if found:
        return found
    raise ValueError(f"the Consent carries no {CONSENT_IDENTIFIER_SYSTEM} identifier; build it with "
                     "consent_resource()")


def _id_of(resource: dict) -> str | None:
    found = resource.get("id")
    return str(found) if found else None


async def create_once(client: FhirClient, caps: EhrCapabilities, resource_type: str, resource: dict,
                      system: str, value: str, *,
                      search_params: Sequence[tuple[str, str]] = ()) -> CreateResult:
    """Create `resource` unless the EHR already holds a `resource_type` with identifier `system|value`.

    `search_params` narrow the search-before-create (e.g. the patient). Raises SessionExpired (401),
    DuplicateCheckFailed (the search failed, so nothing was created), and EhrError with `http_status`
    (None when the EHR was not reached or timed out) and `outcome` when the create failed. Whether the
    type may be created at all is the caller's question.
    """
    conditional = resource_type in caps.conditional_create
    if not conditional and caps.can(resource_type, "search-type"):
        params = [("identifier", identifier_token(system, value)), *search_params]
        try:
            found = await client.search(resource_type, params)
        except EhrError as exc:
            error = DuplicateCheckFailed(exc.message, "The app keeps the record and will try again.",
                                         retry_after=exc.retry_after)
            raise error from exc
        found = [r for r in found if carries_identifier(r, system, value)]
        if found:
            return CreateResult(_id_of(found[0]), created=False)
    status, stored = await client.create(resource_type, resource,
                                         if_none_exist=if_none_exist_criteria(system, value) if conditional
                                         else None)
    return CreateResult(_id_of(stored), created=status != 200)


def _from_error(exc: EhrError) -> WritebackOutcome:
    failure = classify_error(exc)
    if failure.temporary:
        return WritebackOutcome(WritebackStatus.PENDING, f"Will retry: {exc.message}")
    outcome = exc.outcome or exc.message
    return WritebackOutcome(WritebackStatus.FAILED,
                            f"The EHR refused the Consent (HTTP {failure.http_status}): {outcome}")


async def write_consent(client: FhirClient, caps: EhrCapabilities, resource: dict) -> WritebackOutcome:
    """Write one Consent built by `consent_resource` to the EHR, at most once per app consent id."""
    consent_id = _business_id(resource)
    if not caps.can("Consent", "create"):
        return WritebackOutcome(WritebackStatus.NOT_ACCEPTED, NOT_ACCEPTED)
    extra: list[tuple[str, str]] = []
    patient = (resource.get("patient") or {}).get("reference", "")
    if patient.startswith("Patient/") and "patient" in caps.search_params.get("Consent", frozenset()):
        extra.append(("patient", patient))  # type-qualified: some servers match a bare id on nothing
    try:
        result = await create_once(client, caps, "Consent", resource, CONSENT_IDENTIFIER_SYSTEM, consent_id,
                                   search_params=extra)
    except SessionExpired as exc:
        return WritebackOutcome(WritebackStatus.PENDING, f"Will retry: {exc.message}")
    except DuplicateCheckFailed as exc:
        # `search` keeps no status; creating blindly could duplicate, so try again later.
        return WritebackOutcome(WritebackStatus.PENDING, f"Will retry: could not check whether the EHR already "
                                           f"has this consent ({exc.message})")
    except EhrError as exc:
        return _from_error(exc)
    if not result.created:
        return WritebackOutcome(WritebackStatus.WRITTEN,
                                f"The EHR already has this consent (Consent/{result.fhir_id}).",
                                result.fhir_id)
    return WritebackOutcome(WritebackStatus.WRITTEN, f"Written to the EHR as Consent/{result.fhir_id}.", result.fhir_id)
