"""Everything the app reads about one patient for one month, in about one round trip.

Where the EHR offers batch, all reads travel in one batch Bundle; where it does not (Epic, for
one), they run as concurrent requests, so the wall time stays about that of the slowest read.

Every reference search names the type (`patient=Patient/<id>`): servers differ on a bare id. Medplum's
server reads a bare `patient` or `subject` as a Patient and matches nothing on any other reference parameter
(issue 15: `Coverage?beneficiary=<id>` found no Coverage there); others take it as any type. The `patient`
parameter is used wherever R4 defines one for the type, Coverage's included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.fhir_client import FhirClient, outcome_text
from smart_app.ehr.identity import UserIdentity, identity_from, identity_queries, user_reference
from smart_app.errors import EhrError, SessionExpired
from smart_app.ledger.months import Month

LOINC = "http://loinc.org"
# The app's own code system for care-management programs, used on the Consents and CarePlans it
# writes and reads (no standard code system names CCM, PCM, BHI or CoCM enrolment).
CARE_PROGRAM = "http://example.org/fhir/CodeSystem/care-program"
# Reads without which no decision can be made; the others degrade to a finding.
ESSENTIAL = ("patient", "conditions")


@dataclass(frozen=True)
class PatientRecord:
    """The raw FHIR resources read for a patient-month, and which reads failed and why."""

    patient: dict
    parts: dict[str, list[dict]]
    user: dict | None
    unavailable: dict[str, str] = field(default_factory=dict)
    round_trips: int = 1

    def get(self, part: str) -> list[dict]:
        """The resources of one part (conditions, consents, scales, encounters, ...)."""
        return self.parts.get(part, [])

    def identity(self, fhir_user: str | None) -> UserIdentity:
        """The signed-in user as read with the record."""
        unavailable = {k: v for k, v in self.unavailable.items() if k in ("user", "user_roles")}
        return identity_from(user_reference(fhir_user), self.user, self.get("user_roles"), unavailable)


@dataclass(frozen=True)
class FhirQuery:
    """One read (`params` empty, `target` = Type/id) or search (`target` = Type) of the record."""

    target: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        """The relative URL, as a batch entry carries it."""
        return f"{self.target}?{urlencode(self.params)}" if self.params else self.target


def local_midnight(day: date, tz: str) -> str:
    """Midnight starting `day` in the zone, as a FHIR dateTime with its offset (DST-aware)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).isoformat()


def coverage_parameter(search_params: Mapping[str, frozenset[str]] | None = None) -> str:
    """The Coverage search parameter naming the patient: `patient` (R4 defines it), or `beneficiary` where the
    EHR's CapabilityStatement lists Coverage's parameters and only that one."""
    offered = (search_params or {}).get("Coverage")
    if offered and "patient" not in offered and "beneficiary" in offered:
        return "beneficiary"
    return "patient"


def record_requests(patient_id: str, month: str, user_ref: str | None,
                    scale_loinc: tuple[str, ...], tz: str = "UTC", *,
                    search_params: Mapping[str, frozenset[str]] | None = None) -> dict[str, FhirQuery]:
    """The reads and searches made for a patient-month, by part name; `scale_loinc` from the rule set.

    Month bounds carry the organization's offset: a scale taken at 8 pm on the month's last day in New
    York is in that month, though in UTC it is already the next one. `search_params`: the search parameters
    the EHR lists per type (`EhrCapabilities.search_params`), where it lists them.
    """
    patient = f"Patient/{patient_id}"
    service = Month.parse(month)
    start, end = service.first_day, service.next().first_day
    # Encounters from 13 months back: the initiating visit (within a year) and recent discharges.
    history = (start - timedelta(days=400)).isoformat()
    scale_codes = ",".join(f"{LOINC}|{code}" for code in scale_loinc)
    queries = {
        "patient": FhirQuery(patient),
        "conditions": FhirQuery("Condition", (("patient", patient),)),
        "consents": FhirQuery("Consent", (("patient", patient),)),
        "scales": FhirQuery("Observation", (
            ("patient", patient), ("code", scale_codes),
            ("date", f"ge{local_midnight(start - timedelta(days=365), tz)}"),
            ("date", f"lt{local_midnight(end, tz)}"))),
        "mdm": FhirQuery("Observation", (
            ("patient", patient), ("code", f"{CARE_PROGRAM}|mdm-complexity"),
            ("date", f"ge{history}"), ("date", f"lt{local_midnight(end, tz)}"))),
        "encounters": FhirQuery("Encounter", (("patient", patient), ("date", f"ge{history}"))),
        # Medication reconciliation after a discharge (TCM), where the EHR records it as a Procedure.
        "procedures": FhirQuery("Procedure", (("patient", patient), ("date", f"ge{history}"))),
        "care_plans": FhirQuery("CarePlan", (("patient", patient),)),
        "care_teams": FhirQuery("CareTeam", (("patient", patient),)),
        "coverage": FhirQuery("Coverage", ((coverage_parameter(search_params), patient),)),
    }
    for name, (target, params) in identity_queries(user_ref).items():
        queries[name] = FhirQuery(target, params)
    return queries


async def _via_batch(client: FhirClient, urls: dict[str, FhirQuery]) -> tuple[dict, dict[str, str], int]:
    entries = await client.batch([query.url for query in urls.values()])
    results: dict[str, object] = {}
    failures: dict[str, str] = {}
    extra_trips = 0
    for name, entry in zip(urls, entries, strict=True):
        status = str((entry.get("response") or {}).get("status", ""))
        resource = entry.get("resource")
        if not status.startswith("2") or not isinstance(resource, dict):
            detail = outcome_text(resource) or status or "no response"
            failures[name] = f"the EHR answered {detail}"
            continue
        if resource.get("resourceType") == "Bundle":
            has_next = any(link.get("relation") == "next" for link in resource.get("link") or [])
            extra_trips += int(has_next)
            results[name] = await client.collect(resource, name)
        else:
            results[name] = resource
    return results, failures, 1 + extra_trips


async def _via_concurrent(client: FhirClient, urls: dict[str, FhirQuery]) -> tuple[dict, dict[str, str], int]:
    async def one(query: FhirQuery) -> object:
        if query.params:
            return await client.search(query.target, list(query.params))
        kind, rid = query.target.split("/", 1)
        return await client.read(kind, rid)

    outcomes = await asyncio.gather(*(one(u) for u in urls.values()), return_exceptions=True)
    results: dict[str, object] = {}
    failures: dict[str, str] = {}
    for name, outcome in zip(urls, outcomes, strict=True):
        if isinstance(outcome, SessionExpired):
            raise outcome
        if isinstance(outcome, EhrError):
            failures[name] = outcome.message
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results[name] = outcome
    return results, failures, 1


async def fetch_record(client: FhirClient, caps: EhrCapabilities, patient_id: str, month: str,
                       fhir_user: str | None, scale_loinc: tuple[str, ...], tz: str = "UTC") -> PatientRecord:
    """Read the patient-month's record in the organization's zone; EhrError when an essential part fails."""
    urls = record_requests(patient_id, month, user_reference(fhir_user), scale_loinc, tz,
                           search_params=caps.search_params)
    fetch = _via_batch if caps.batch else _via_concurrent
    results, failures, trips = await fetch(client, urls)
    for name in ESSENTIAL:
        if name in failures:
            raise EhrError(f"The patient's {name} could not be read: {failures[name]}.",
                           "Reload the page in a minute; if it persists, tell the EHR administrator.")
    user = results.get("user")
    parts = {name: list(value) for name, value in results.items()
             if isinstance(value, list)}
    return PatientRecord(patient=results["patient"], parts=parts,
                         user=user if isinstance(user, dict) else None,
                         unavailable=failures, round_trips=trips)


async def fetch_identity(client: FhirClient, caps: EhrCapabilities, fhir_user: str | None) -> UserIdentity:
    """Read who the user is (a sign-in without a patient); parts the EHR refuses are noted, not fatal."""
    reference = user_reference(fhir_user)
    urls = {name: FhirQuery(target, params) for name, (target, params) in identity_queries(reference).items()}
    if not urls:
        return identity_from(None, None, [])
    fetch = _via_batch if caps.batch else _via_concurrent
    results, failures, _ = await fetch(client, urls)
    user, roles = results.get("user"), results.get("user_roles")
    return identity_from(reference, user if isinstance(user, dict) else None,
                         list(roles) if isinstance(roles, list) else [], failures)


async def read_parts(client: FhirClient, caps: EhrCapabilities,
                     queries: dict[str, FhirQuery]) -> tuple[dict[str, object], dict[str, str]]:
    """Further reads in one batch (or concurrently where the EHR has no batch): results and failures by name,
    none essential (a type the EHR refuses is a failure to note, not an error)."""
    fetch = _via_batch if caps.batch else _via_concurrent
    results, failures, _ = await fetch(client, queries)
    return results, failures
