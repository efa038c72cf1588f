"""Claims an auditor accepts, over real HTTP to the sandbox EHR: people by name, credentials and NPI read from
the EHR, the patient's MRN and MBI, diagnosis pointers on every line (TCM included), no date of service after
today, and the itemized time log on the superbill PDF, read back as text."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from zoneinfo import ZoneInfo

from pypdf import PdfReader

from smart_app.billing.exports import render_superbill, superbill_claims
from smart_app.billing.fhir_resources import claim_resource, superbill_document
from smart_app.billing.rollup import run_rollup
from smart_app.db import transaction
from smart_app.launch.organizations import get_organization
from smart_app.services import build_context
from tests.billing.test_rollup import MONTH, claims, record
from tests.stack import Stack
from tests.test_capture_api import launch

NPI = "http://hl7.org/fhir/sid/us-npi"
MBI = "http://hl7.org/fhir/sid/us-mbi"


def rollup(stack: Stack, source: str = "ehr") -> None:
    async def go() -> None:
        app = build_context(stack.settings)
        try:
            with transaction(app.sessions) as db:
                org = get_organization(db, stack.organization.id)
            assert org is not None
            report = await run_rollup(app, org, MONTH, source=source)
            assert report.errors == []
        finally:
            await app.http.aclose()
            app.engine.dispose()
    asyncio.run(go())


def pdf_text(stack: Stack) -> str:
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            org = get_organization(db, stack.organization.id)
            assert org is not None
            chosen = superbill_claims(db, org, MONTH, include_proposed=True)
    finally:
        app.engine.dispose()
    pdf = render_superbill(chosen, org, MONTH, "pdf")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_the_month_superbill_and_claims_name_people_patients_and_the_time_log(stack: Stack) -> None:
    nurse, _ = launch(stack, "ccm-two-chronic", user="pr-nurse")
    record(stack, nurse, 22, 700)
    launch(stack, "tcm-recent-discharge", user="pr-care-manager")
    rollup(stack)

    by_patient = {c.patient_id: c.claim for c in claims(stack)}
    ccm, tcm = by_patient["ccm-two-chronic"], by_patient["tcm-recent-discharge"]
    today = dt.datetime.now(ZoneInfo(stack.organization.timezone)).date()

    # The patient by name, birth date, MRN and MBI (from the EHR's Patient and Coverage identifiers).
    assert (ccm.patient_mrn, ccm.patient_mbi, ccm.patient_birth_date) == ("MRN100101", "1EG4TE5MK73", "1951-06-14")
    # Every person by name, credentials and NPI as the EHR's Practitioner has them.
    people = {p.reference: p for p in ccm.performers}
    assert people["Practitioner/pr-nurse"].label == "Tomas Delgado, LPN, NPI 1234567919"
    assert people["Practitioner/pr-nurse"].minutes == 20
    assert people["Practitioner/pr-billing-md"].label == "Dr. Adaeze Okafor, MD, NPI 1234567893"
    assert not [w for w in ccm.warnings if "NPI" in w]

    # The itemized log: the 22 minutes, 20 toward 99490 and 2 beyond the unit billed.
    [item] = ccm.time_log
    assert (item.minutes, item.counted, item.not_counted) == (22, (("99490", 20),), 2)
    assert item.performer_name == "Tomas Delgado" and item.role == "clinical-staff"

    # TCM: a diagnosis on every line, and its date of service the face-to-face visit, never after today.
    assert [line.code for line in tcm.lines] and all(line.service_date <= today for line in tcm.lines)
    assert tcm.diagnoses and all("tcm" in d.programs for d in tcm.diagnoses)
    # The medication reconciliation is read from the EHR's Procedure (system/Procedure.rs), so no warning.
    assert not [w for w in tcm.warnings if "medication reconciliation" in w], tcm.warnings
    resource = claim_resource(tcm, created=today, observation_refs={})
    assert all(item["diagnosisSequence"] for item in resource["item"])
    assert resource["provider"]["identifier"] == {"system": NPI, "value": "1234567893"}
    assert resource["patient"]["identifier"] == {"system": MBI, "value": "6KN9YK1UV38"}

    # The superbill PDF, read back as text, shows names, NPIs, MRNs and the itemized log.
    text = pdf_text(stack)
    for fact in ("Adaeze Okafor", "NPI 1234567893", "Tomas Delgado", "NPI 1234567919", "MRN100101", "MRN100106",
                 "1EG4TE5MK73", "6KN9YK1UV38",
                 "Itemized time log", "99490: 20", "22 minutes logged in 1 entries; 20 count toward the codes billed",
                 "2 minutes not billed: beyond the units billed"):
        assert fact in text, fact

    # The superbill document sent with the Claim carries the log as a CSV attachment too.
    document = superbill_document(ccm, b"%PDF-1.4 test", created=dt.datetime.now(dt.UTC))
    assert [c["attachment"]["contentType"] for c in document["content"]] == [
        "application/pdf", "text/csv; charset=utf-8"]

    # A rollup from the saved read names the same people (kept in the practitioners table).
    rollup(stack, source="cache")
    again = {c.patient_id: c.claim for c in claims(stack)}["ccm-two-chronic"]
    assert again.performers == ccm.performers and again.patient_mbi == "1EG4TE5MK73"
