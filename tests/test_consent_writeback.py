"""Writing consents to the sandbox EHR over real HTTP: once per consent, whatever the EHR offers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

import smart_app.paths
from smart_app.db import transaction
from smart_app.ehr.capabilities import EhrCapabilities, fetch_capabilities
from smart_app.ehr.consent_resource import CONSENT_ELEMENTS_URL, consent_resource
from smart_app.ehr.consent_writeback import NOT_ACCEPTED, WritebackOutcome, write_consent
from smart_app.ehr.facts import map_consents
from smart_app.ehr.fhir_client import FhirClient
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.consents import ConsentInput, ConsentRecord, consent_history, mark_writeback, record_consent
from smart_app.rules.facts import Consent
from smart_app.sandbox import SandboxConfig, create_app
from tests.live_server import serve

PATIENT = "ccm-no-consent"
ORG_REF = "Organization/org-practice"
NURSE = "Practitioner/pr-care-manager"
NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
_counter = iter(range(1_000_000))


@dataclasses.dataclass(frozen=True)
class Sandbox:
    base: str
    caps: EhrCapabilities

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"


def sandbox_app(base_url: str, **config: object):  # noqa: ANN201
    return create_app(SandboxConfig(base_url=base_url, fixtures_dir=smart_app.paths.data_path("fixtures"),
                                    open=True, **config))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with serve(sandbox_app) as base:
        async def caps() -> EhrCapabilities:
            async with httpx.AsyncClient(timeout=20) as http:
                found, why = await fetch_capabilities(http, f"{base}/fhir")
                assert why is None
                return found
        yield Sandbox(base, asyncio.run(caps()))


def record(kind: str = "consent", method: str = "verbal", **changes: object) -> ConsentRecord:
    """A consent row as the ledger hands it back, with a fresh id."""
    base = ConsentRecord(
        id=f"consent-{next(_counter)}-{datetime.now(UTC).timestamp()}", organization_id="org-ny",
        patient_id=PATIENT, program="ccm", kind=kind, method=method, explained_availability=True,
        explained_cost_sharing=True, explained_right_to_stop=True, explained_one_practitioner=True,
        obtained_on=date(2026, 11, 3), obtained_by=NURSE, note="", recorded_at=NOW, withdraws_id=None,
        writeback_status="pending", writeback_detail="", fhir_id=None)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def resource_of(rec: ConsentRecord, patient: str = PATIENT) -> dict:
    return consent_resource(rec, patient_ref=f"Patient/{patient}", organization_ref=ORG_REF,
                            performer_ref=f"Patient/{patient}")


def write(fhir_base: str, caps: EhrCapabilities, resource: dict, timeout: float = 20) -> WritebackOutcome:
    async def go() -> WritebackOutcome:
        async with httpx.AsyncClient(timeout=timeout) as http:
            return await write_consent(FhirClient(http, fhir_base, None), caps, resource)
    return asyncio.run(go())


def by_identifier(sandbox: Sandbox, consent_id: str) -> list[dict]:
    bundle = httpx.get(f"{sandbox.fhir}/Consent",
                       params={"identifier": f"urn:smart-app:consent|{consent_id}"}).json()
    return [e["resource"] for e in bundle.get("entry") or []]


def clear_log(sandbox: Sandbox) -> None:
    httpx.delete(f"{sandbox.base}/_sandbox/requests").raise_for_status()


def fhir_log(sandbox: Sandbox) -> list[tuple[str, str]]:
    return [(r["method"], r["path"].split("?")[0]) for r in httpx.get(f"{sandbox.base}/_sandbox/requests").json()
            if r["path"].startswith("/fhir")]


def without_conditional(caps: EhrCapabilities) -> EhrCapabilities:
    return dataclasses.replace(caps, conditional_create=caps.conditional_create - {"Consent"})


def test_the_sandbox_offers_consent_create_and_conditional_create(sandbox) -> None:
    assert sandbox.caps.can("Consent", "create") and "Consent" in sandbox.caps.conditional_create


def test_conditional_create_twice_leaves_one_consent_that_reads_back(sandbox) -> None:
    rec = record()
    resource = resource_of(rec)
    clear_log(sandbox)
    first = write(sandbox.fhir, sandbox.caps, resource)
    second = write(sandbox.fhir, sandbox.caps, resource)
    assert first.status == "written" and first.fhir_id
    assert first.detail == f"Written to the EHR as Consent/{first.fhir_id}."
    assert second == WritebackOutcome("written", f"The EHR already has this consent (Consent/{first.fhir_id}).",
                                      first.fhir_id)
    assert fhir_log(sandbox) == [("POST", "/fhir/Consent"), ("POST", "/fhir/Consent")]
    (stored,) = by_identifier(sandbox, rec.id)
    assert stored["id"] == first.fhir_id
    from fhir.resources.R4B.consent import Consent as FhirConsent

    FhirConsent.model_validate(stored)
    assert stored["policyRule"]["coding"][0]["code"] == "OPTIN"
    assert stored["status"] == "active" and stored["provision"]["period"]["start"] == "2026-11-03"
    assert stored["verification"][0]["verifiedWith"] == {"reference": f"Patient/{PATIENT}"}
    (elements,) = [e for e in stored["extension"] if e["url"] == CONSENT_ELEMENTS_URL]
    assert {e["url"]: e.get("valueBoolean", e.get("valueCode")) for e in elements["extension"]} == {
        "availability": True, "cost-sharing": True, "right-to-stop": True, "one-practitioner": True,
        "method": "verbal"}
    # Read back from the EHR, the app's own Consent is not counted twice: its own record is the one used.
    findings: list[str] = []
    assert map_consents([stored], findings) == []
    foreign = {k: v for k, v in stored.items() if k != "identifier"}
    assert map_consents([foreign], findings) == [Consent("ccm", "active", date(2026, 11, 3), first.fhir_id)]
    assert findings == []


def test_without_consent_create_nothing_is_sent(sandbox) -> None:
    consent_type = sandbox.caps.interactions["Consent"] - {"create"}
    caps = dataclasses.replace(sandbox.caps, interactions={**sandbox.caps.interactions, "Consent": consent_type})
    rec = record()
    clear_log(sandbox)
    outcome = write(sandbox.fhir, caps, resource_of(rec))
    assert outcome == WritebackOutcome("not-accepted", NOT_ACCEPTED, None)
    assert outcome.detail == ("This EHR does not accept Consent from apps; the consent is kept in the app and "
                              "printed on the superbill")
    assert fhir_log(sandbox) == []
    assert by_identifier(sandbox, rec.id) == []
    # An EHR whose CapabilityStatement could not be read is treated the same way.
    assert write(sandbox.fhir, EhrCapabilities(), resource_of(rec)).status == "not-accepted"


def test_without_conditional_create_search_then_create_writes_once(sandbox) -> None:
    caps = without_conditional(sandbox.caps)
    rec = record(method="written")
    resource = resource_of(rec)
    assert "verification" not in resource
    clear_log(sandbox)
    first = write(sandbox.fhir, caps, resource)
    second = write(sandbox.fhir, caps, resource)
    assert first.status == "written" and second.status == "written" and first.fhir_id == second.fhir_id
    assert "already has" in second.detail
    assert fhir_log(sandbox) == [("GET", "/fhir/Consent"), ("POST", "/fhir/Consent"), ("GET", "/fhir/Consent")]
    assert len(by_identifier(sandbox, rec.id)) == 1


def test_a_withdrawal_is_written_as_an_inactive_consent(sandbox) -> None:
    rec = record(kind="withdrawal", withdraws_id="consent-x", obtained_on=date(2026, 11, 10),
                 explained_availability=False, explained_cost_sharing=False, explained_right_to_stop=False,
                 explained_one_practitioner=False)
    outcome = write(sandbox.fhir, sandbox.caps, resource_of(rec))
    assert outcome.status == "written"
    (stored,) = by_identifier(sandbox, rec.id)
    assert stored["status"] == "inactive" and stored["provision"] == {"type": "permit",
                                                                      "period": {"end": "2026-11-30"}}
    assert "extension" not in stored and "verification" not in stored and stored["policyRule"]


def test_a_refusal_fails_with_the_ehrs_reason(sandbox) -> None:
    outcome = write(sandbox.fhir, sandbox.caps, resource_of(record(), patient="nobody-here"))
    assert outcome.status == "failed" and outcome.fhir_id is None
    assert outcome.detail.startswith("The EHR refused the Consent (HTTP 422): ")
    assert "Patient/nobody-here, which does not exist" in outcome.detail


def test_an_unreachable_or_slow_ehr_leaves_the_consent_pending(sandbox) -> None:
    with serve(lambda base: sandbox_app(base, latency_ms=1500)) as slow:
        outcome = write(f"{slow}/fhir", sandbox.caps, resource_of(record()), timeout=0.3)
    assert outcome.status == "pending" and "did not answer in time" in outcome.detail
    # The slow server is gone now: nothing listens on its port.
    outcome = write(f"{slow}/fhir", sandbox.caps, resource_of(record()))
    assert outcome.status == "pending" and "could not be reached" in outcome.detail
    search_first = write(f"{slow}/fhir", without_conditional(sandbox.caps), resource_of(record()))
    assert search_first.status == "pending" and "could not check" in search_first.detail


def test_record_write_and_mark_round_trip(sandbox, sessions) -> None:
    with transaction(sessions) as db:
        save_organizations(db, [Organization(id="org-ny", name="NY Clinic", issuer=sandbox.fhir,
                                             client_id="app", timezone="America/New_York")])
        rec = record_consent(db, ConsentInput(
            organization_id="org-ny", patient_id=PATIENT, program="ccm", method="verbal",
            explained_availability=True, explained_cost_sharing=True, explained_right_to_stop=True,
            explained_one_practitioner=True, obtained_on=date(2026, 11, 3), obtained_by=NURSE), now=NOW)
    outcome = write(sandbox.fhir, sandbox.caps, resource_of(rec))
    with transaction(sessions) as db:
        mark_writeback(db, rec.id, outcome.status, outcome.detail, outcome.fhir_id)
    with sessions() as db:
        (stored,) = consent_history(db, "org-ny", PATIENT)
    assert (stored.writeback_status, stored.fhir_id) == ("written", outcome.fhir_id)
    assert [r["id"] for r in by_identifier(sandbox, rec.id)] == [outcome.fhir_id]
