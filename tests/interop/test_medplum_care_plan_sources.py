"""The care-plan editor's reads of the chart against Medplum's FHIR router: the same medication orders, allergies,
care team and visits as from our sandbox (both unshifted), in one batch or concurrently, so the seeded draft does not
rest on the sandbox's reading of FHIR."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx

from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.care_plan_sources import chart_facts, source_requests
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.record import read_parts
from smart_app.ledger.care_plan_seed import ChartFacts
from tests.interop.conftest import Medplum
from tests.interop.test_medplum_gateway import Reference, medplum_caps, sandbox  # noqa: F401 (fixtures)

PATIENT = "ccm-two-chronic"
TODAY = date(2026, 11, 20)  # within the fixtures' anchor month; neither server here shifts dates


def sources(fhir_base: str, caps: EhrCapabilities) -> ChartFacts:
    async def go() -> ChartFacts:
        async with httpx.AsyncClient(timeout=20) as http:
            results, failures = await read_parts(FhirClient(http, fhir_base, None), caps,
                                                 source_requests(PATIENT, TODAY))
        return chart_facts(results, failures, (), TODAY, billing_practitioner="Practitioner/pr-billing-md")
    return asyncio.run(go())


def test_the_care_plan_sources_read_alike_on_medplum_and_the_sandbox(
        medplum: Medplum,
        medplum_caps: EhrCapabilities,  # noqa: F811 (the gateway tests' fixture)
        sandbox: Reference,  # noqa: F811 (the gateway tests' fixture)
) -> None:
    medplum.clear_requests()
    batched = sources(medplum.fhir, medplum_caps)
    assert medplum.requests() == [("POST", "/fhir")]
    assert batched.unread == ()
    assert [m.text for m in batched.medications or ()] == [
        "Metformin 500 mg tablet: 1 tablet by mouth twice daily with meals",
        "Lisinopril 10 mg tablet: 1 tablet by mouth once daily"]
    assert [a.text for a in batched.allergies or ()] == ["Penicillin (Hives; high criticality)"]
    assert any(v.on == date(2026, 6, 18) and "Susquehanna Eye Associates" in v.text for v in batched.visits or ())
    assert any(m.name == "Adaeze Okafor, MD" and m.time_role == "billing practitioner" for m in batched.team or ())
    assert sources(medplum.fhir, EhrCapabilities()) == batched  # concurrent reads, as on an EHR without batch
    assert sources(sandbox.fhir, sandbox.caps) == batched
