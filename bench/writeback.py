"""Benchmark 4, write-back: claims per second delivered into the sandbox EHR in transaction Bundles, by the
number of outbox rows per Bundle (`deliver(..., batch_size=N)`).

Each claim is what the biller's approval queues for a CCM patient-month on an open EHR: its minutes
Observation and the Claim that points at it (two outbox rows, the Claim referencing the Observation by its
`urn:uuid`). They are built with `billing.fhir_resources` from fixture-like claims, queued with
`outbox.enqueue`, and delivered to an open-mode sandbox (`SandboxConfig(open=True)`, profile `open`, no
injected latency, a fresh one per bundle size) on loopback. claims/s = claims delivered / wall time of
`deliver`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import httpx

from smart_app.billing.fhir_resources import claim_resource, full_url, minutes_observation
from smart_app.billing.outbox import OutgoingResource, deliver, enqueue
from smart_app.billing.values import ClaimLine, ConsentEvidence, Diagnosis, Performer, ProposedClaim
from smart_app.db import make_engine, session_factory, transaction
from smart_app.ehr.capabilities import fetch_capabilities
from smart_app.ehr.fhir_client import FhirClient
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig, create_app
from tests.live_server import serve

ORG = "bench-writeback"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
PATIENTS = ("ccm-two-chronic", "complex-ccm-high", "pcm-single-complex", "bhi-depression-phq9",
            "cocm-depression-anxiety")
SIZES = (1, 10, 50, 100)


def ccm_claim(patient_id: str, month: str) -> ProposedClaim:
    """A CCM claim like the fixtures': 99490 plus one 99439 unit, two diagnoses, nurse and care manager."""
    last = dt.date.fromisoformat(f"{month}-28")
    return ProposedClaim(
        organization_id=ORG, patient_id=patient_id, month=month,
        lines=(ClaimLine("99490", 1, "ccm", "CCM, first 20 minutes of clinical staff time", 20,
                         {"clinical-staff": 20}, last, rate=66.13, rate_year=2026, entry_ids=("e-1", "e-2")),
               ClaimLine("99439", 1, "ccm", "CCM, each additional 20 minutes", 22,
                         {"clinical-staff": 12, "care-manager": 10}, last, rate=50.44, rate_year=2026,
                         entry_ids=("e-3", "e-4"))),
        diagnoses=(Diagnosis("E11.9", ICD10, "Type 2 diabetes mellitus without complications", "cond-1"),
                   Diagnosis("I10", ICD10, "Essential (primary) hypertension", "cond-2")),
        performers=(Performer("Practitioner/pr-nurse", "clinical-staff", 32, "Nurse"),
                    Performer("Practitioner/pr-care-manager", "care-manager", 10, "Care Manager")),
        consents=(ConsentEvidence("ccm", dt.date(2020, 1, 15), "consent-1", "app"),),
        billing_practitioner="Practitioner/pr-billing-md", supervising_practitioner="Practitioner/pr-billing-md",
        place_of_service="11", coverage=None, patient_name="Bench Patient", patient_birth_date="1950-01-01",
        patient_mrn="MRN-1")


def claim_rows(claim: ProposedClaim) -> list[OutgoingResource]:
    observation = minutes_observation(claim, "ccm")
    resource = claim_resource(claim, created=dt.date(2026, 11, 1), observation_refs={"ccm": full_url(observation)})
    out = []
    for payload, purpose in ((observation, "minutes"), (resource, "claim")):
        ident = payload["identifier"][0]
        out.append(OutgoingResource(payload["resourceType"], purpose, ident["system"], ident["value"], payload))
    return out


def months(count: int, start_year: int) -> list[str]:
    return [f"{start_year + i // 12}-{i % 12 + 1:02d}" for i in range(count)]


def run(database_url: str, folder: Path, *, quick: bool) -> dict:
    claims_per_size = 40 if quick else 100
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    with transaction(sessions) as db:
        save_organizations(db, [Organization(id=ORG, name="Write-back bench", issuer="http://127.0.0.1:9/fhir",
                                             client_id="bench")])

    def sandbox(base: str):  # noqa: ANN202
        return create_app(SandboxConfig(base_url=base, fixtures_dir=data_path("fixtures"), open=True,
                                        profile="open"))

    results = {}

    async def deliver_size(base: str, n: int, size: int) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            caps, why = await fetch_capabilities(http, f"{base}/fhir")
            if why:
                raise RuntimeError(f"sandbox capabilities: {why}")
            client = FhirClient(http, f"{base}/fhir", None)
            # Distinct months per size, so every claim is new to the EHR and to the outbox.
            claims = [ccm_claim(PATIENTS[i % len(PATIENTS)], month)
                      for i, month in enumerate(months(claims_per_size, 1900 + 40 * n))]
            with transaction(sessions) as db:
                for claim in claims:
                    enqueue(db, organization_id=ORG, claim_id=None, patient_id=claim.patient_id, month=claim.month,
                            resources=claim_rows(claim))
            started = time.perf_counter()
            report = await deliver(sessions, client, caps, ORG, limit=2 * claims_per_size, batch_size=size)
            wall = time.perf_counter() - started
            results[str(size)] = {
                "claims": claims_per_size, "rows": report.sent + report.already_there,
                "failed": report.failed + report.retried + report.not_accepted,
                "seconds": round(wall, 2), "claims_per_s": round(claims_per_size / wall, 1)}

    try:
        for n, size in enumerate(SIZES):
            # A fresh EHR per size: its store's size, not the order of the runs, must not decide the figure.
            with serve(sandbox) as base:
                asyncio.run(deliver_size(base, n, size))
    finally:
        engine.dispose()
    return {"claims_per_size": claims_per_size, "by_bundle_size": results}
