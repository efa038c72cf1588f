"""Writing a consent to the EHR as a FHIR Consent, once, adapting to what the EHR accepts.

- No Consent create in the CapabilityStatement (Epic, Oracle Health): no request; "not-accepted",
  the app stays the record and the consent is printed on the superbill.
- Conditional create offered: POST with `If-None-Exist: identifier=urn:smart-app:consent|<id>`.
- Otherwise: search by that identifier first, create only when absent (and without search, create).
Outcomes: "written" (with the server's id), "failed" for a refusal (4xx: retrying will not help),
"pending" when it may work later (5xx, 408, 429, timeout, network, expired session, failed search).
"""

from __future__ import annotations

from dataclasses import dataclass

from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.consent_resource import CONSENT_IDENTIFIER_SYSTEM
from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import EhrError, SessionExpired

NOT_ACCEPTED = ("This EHR does not accept Consent from apps; the consent is kept in the app and printed on "
                "the superbill")
# Refusals worth retrying: the request timed out at the server or the server asked us to slow down.
_RETRYABLE = frozenset({408, 429})


@dataclass(frozen=True)
class WritebackOutcome:
    """How a write went: status written | not-accepted | failed | pending, a sentence, the EHR's id."""

    status: str
    detail: str
    fhir_id: str | None = None


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


def _from_error(exc: EhrError) -> WritebackOutcome:
    status = getattr(exc, "http_status", None)
    if status is None or status >= 500 or status in _RETRYABLE:
        return WritebackOutcome("pending", f"Will retry: {exc.message}")
    outcome = getattr(exc, "outcome", "") or exc.message
    return WritebackOutcome("failed", f"The EHR refused the Consent (HTTP {status}): {outcome}")


async def write_consent(client: FhirClient, caps: EhrCapabilities, resource: dict) -> WritebackOutcome:
    """Write one Consent built by `consent_resource` to the EHR, at most once per app consent id."""
    consent_id = _business_id(resource)
    token = f"{CONSENT_IDENTIFIER_SYSTEM}|{consent_id}"
    if not caps.can("Consent", "create"):
        return WritebackOutcome("not-accepted", NOT_ACCEPTED)
    conditional = "Consent" in caps.conditional_create
    try:
        if not conditional and caps.can("Consent", "search-type"):
            params = [("identifier", token)]
            patient = (resource.get("patient") or {}).get("reference", "")
            if patient.startswith("Patient/") and "patient" in caps.search_params.get("Consent", frozenset()):
                params.append(("patient", patient.removeprefix("Patient/")))
            try:
                found = await client.search("Consent", params)
            except EhrError as exc:
                # `search` keeps no status; creating blindly could duplicate, so try again later.
                return WritebackOutcome("pending", f"Will retry: could not check whether the EHR already "
                                                   f"has this consent ({exc.message})")
            # A server that ignores an unknown parameter returns everything: trust only a real match.
            found = [r for r in found if _business_id_or_none(r) == consent_id]
            if found:
                fhir_id = found[0].get("id")
                return WritebackOutcome("written", f"The EHR already has this consent (Consent/{fhir_id}).",
                                        str(fhir_id) if fhir_id else None)
        status, stored = await client.create("Consent", resource,
                                             if_none_exist=f"identifier={token}" if conditional else None)
    except SessionExpired as exc:
        return WritebackOutcome("pending", f"Will retry: {exc.message}")
    except EhrError as exc:
        return _from_error(exc)
    fhir_id = stored.get("id")
    fhir_id = str(fhir_id) if fhir_id else None
    if status == 200:
        return WritebackOutcome("written", f"The EHR already has this consent (Consent/{fhir_id}).", fhir_id)
    return WritebackOutcome("written", f"Written to the EHR as Consent/{fhir_id}.", fhir_id)
