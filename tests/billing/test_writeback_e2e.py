"""Month end over real HTTP, per EHR profile: rollup, biller approval, write-back exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import httpx
import pytest
from fhir.resources.R4B.claim import Claim

from smart_app.billing.fhir_resources import business_identifier
from smart_app.launch.backend import backend_token
from smart_app.services import build_context
from tests.databases import BACKENDS, fresh_database
from tests.stack import Stack, biller_headers, new_browser, running_stack
from tests.test_capture_api import api, earlier_today, launch

MONTH = dt.datetime.now(ZoneInfo("America/New_York")).strftime("%Y-%m")
PATIENT = "ccm-two-chronic"


# strict: an open EHR that, like Medplum's server, matches a reference search only with its type (Patient/<id>).
@pytest.fixture(scope="module", params=[(p, b) for p in ("open", "strict", "epic-like", "oracle-like")
                                        for b in BACKENDS],
                ids=lambda pb: f"{pb[0]}-{pb[1]}")
def month_end(request, tmp_path_factory, pg_template) -> Iterator[tuple[Stack, dict, str]]:
    """A stack with a rolled-up, approved month for one patient; yields it, the biller's headers, the profile."""
    profile, backend = request.param
    tmp = tmp_path_factory.mktemp(f"writeback-{profile}-{backend}")
    with fresh_database(backend, tmp, pg_template) as url, running_stack(url, tmp, profile=profile) as stack:
        nurse, _ = launch(stack, PATIENT, user="pr-nurse")
        date, time = earlier_today(900)
        made = api(stack, "POST", "/entries", nurse, json={
            "program": "ccm", "activity": "medication-reconciliation", "date": date, "time": time, "minutes": 24})
        assert made.status_code == 201, made.text
        biller = biller_headers(stack)
        rolled = api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH})
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["errors"] == []
        yield stack, biller, profile


def count(stack: Stack, kind: str, identifier: dict) -> int:
    token = f"{identifier['system']}|{identifier['value']}"
    response = httpx.get(f"{stack.sandbox_url}/_sandbox/resources/{kind}", params={"identifier": token})
    response.raise_for_status()
    return response.json()["total"]


def billing_page(stack: Stack, headers: dict) -> str:
    with new_browser() as browser:
        page = browser.get(f"{stack.app_url}/billing", params={"month": MONTH}, headers=headers)
    assert page.status_code == 200, page.text
    return page.text


def claim_id(html: str) -> str:
    match = re.search(r'data-api="/api/v1/claims/([^/"]+)/approve"', html)
    assert match, "the biller page offers the proposed claim for approval"
    return match.group(1)


def approve_once(stack: Stack, headers: dict) -> None:
    html = billing_page(stack, headers)
    if "Approve and send" not in html:
        return  # approved by an earlier test of this module
    approved = api(stack, "POST", f"/claims/{claim_id(html)}/approve", headers, json={"note": "checked"})
    assert approved.status_code == 200, approved.text
    assert "queued for the EHR" in approved.json()["message"]


def ident(kind: str, *parts: str) -> dict:
    return business_identifier(kind, "sandbox", PATIENT, MONTH, *parts)


OPEN_EXPECTED = {"Claim": (ident("claim", "v1"), 1), "Observation": (ident("minutes", "ccm", "v1"), 1),
                 "DocumentReference": (ident("superbill", "v1"), 1), "ChargeItem": (ident("charge", "99490", "v1"), 0)}
EXPECTED = {
    # profile: resource type -> (identifier, count in the EHR)
    "open": OPEN_EXPECTED,
    "strict": OPEN_EXPECTED,
    "epic-like": {"Claim": (ident("claim", "v1"), 0), "Observation": (ident("minutes", "ccm", "v1"), 1),
                  "DocumentReference": (ident("superbill", "v1"), 1)},
    "oracle-like": {"Claim": (ident("claim", "v1"), 0), "ChargeItem": (ident("charge", "99490", "v1"), 1),
                    "Observation": (ident("minutes", "ccm", "v1"), 0),
                    "DocumentReference": (ident("superbill", "v1"), 1)},
}


def test_approval_writes_what_each_ehr_accepts_exactly_once(month_end) -> None:
    stack, biller, profile = month_end
    approve_once(stack, biller)
    for _ in range(2):  # sending again, and again, creates nothing more
        sent = api(stack, "POST", "/billing/deliver", biller)
        assert sent.status_code == 200, sent.text
    for kind, (identifier, expected) in EXPECTED[profile].items():
        assert count(stack, kind, identifier) == expected, (profile, kind)


def test_biller_page_says_where_each_resource_went(month_end) -> None:
    stack, biller, profile = month_end
    approve_once(stack, biller)
    html = billing_page(stack, biller)
    assert "Approved" in html and "99490" in html
    rows = re.findall(r'<tr class="delivery-([a-z-]+)"><td>(\w+) \((\w[\w-]*)\)', html)
    by_purpose = {(kind, purpose): status for status, kind, purpose in rows}
    assert by_purpose[("DocumentReference", "superbill")] == "done"
    if profile in ("open", "strict"):
        assert by_purpose[("Claim", "claim")] == "done"
        assert by_purpose[("Observation", "minutes")] == "done"
        assert by_purpose[("Task", "activity")] == "done"
    if profile == "epic-like":
        assert ("Claim", "claim") not in by_purpose  # the plan never queues what the EHR takes no create for
        assert by_purpose[("Communication", "activity")] == "done"
    if profile == "oracle-like":
        assert by_purpose[("ChargeItem", "claim")] == "done"
        # The EHR refuses a minutes Observation outside vital signs and labs: shown with what to fix.
        assert by_purpose[("Observation", "minutes")] == "failed"
        assert "[writeback]" in html


def backend_read(stack: Stack, path: str) -> dict:
    """Read from the EHR as the month-end job does: a SMART Backend Services token, system scopes."""
    async def go() -> dict:
        app = build_context(stack.settings)
        try:
            token = await backend_token(app.launch, stack.organization)
            response = await app.http.get(f"{stack.fhir_base}/{path}", headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            return response.json()
        finally:
            await app.http.aclose()
            app.engine.dispose()
    return asyncio.run(go())


def search_one(stack: Stack, kind: str, identifier: dict) -> dict:
    found = backend_read(stack, f"{kind}?identifier={identifier['system']}|{identifier['value']}")
    (entry,) = found["entry"]
    return entry["resource"]


def test_what_was_written_reads_back_with_the_same_codes_units_and_minutes(month_end) -> None:
    stack, biller, profile = month_end
    approve_once(stack, biller)
    superbill = search_one(stack, "DocumentReference", ident("superbill", "v1"))
    assert superbill["content"][0]["attachment"]["contentType"] == "application/pdf"
    if profile in ("open", "strict"):
        claim = search_one(stack, "Claim", ident("claim", "v1"))
        Claim.model_validate(claim)
        # The patient's Coverage was found (by patient=Patient/<id>, which strict requires) and is on the Claim.
        assert claim["insurance"] == [{"sequence": 1, "focal": True,
                                       "coverage": {"reference": f"Coverage/{PATIENT}-coverage"}}]
        assert [(i["productOrService"]["coding"][0]["code"], i["quantity"]["value"]) for i in claim["item"]] == \
            [("99490", 1)]
        assert claim["patient"]["reference"] == f"Patient/{PATIENT}"
        assert claim["supportingInfo"][0]["valueReference"]["reference"].startswith("Observation/")
        # An auditor goes from the Claim to the superbill's itemized time log in the EHR.
        attachment = [i for i in claim["supportingInfo"] if i["category"]["coding"][0]["code"] == "attachment"]
        assert [i["valueReference"]["reference"] for i in attachment] == [f"DocumentReference/{superbill['id']}"]
    elif profile == "oracle-like":
        charge = search_one(stack, "ChargeItem", ident("charge", "99490", "v1"))
        assert charge["code"]["coding"][0]["code"] == "99490" and charge["quantity"]["value"] == 1
    else:
        minutes = search_one(stack, "Observation", ident("minutes", "ccm", "v1"))
        assert minutes["valueQuantity"]["value"] == 24 and minutes["valueQuantity"]["code"] == "min"


def month_with_one_call(stack: Stack) -> tuple[dict, dict, str]:
    """A nurse logs a 21-minute call and the month is rolled up: (nurse headers, biller headers, entry id)."""
    nurse, _ = launch(stack, PATIENT, user="pr-nurse")
    date, time = earlier_today(300)
    made = api(stack, "POST", "/entries", nurse, json={
        "program": "ccm", "activity": "patient-call", "date": date, "time": time, "minutes": 21})
    assert made.status_code == 201, made.text
    biller = biller_headers(stack)
    api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH})
    return nurse, biller, made.json()["entries"][0]["id"]


def late_review(stack: Stack, nurse: dict, biller: dict) -> httpx.Response:
    """20 more minutes after the write-back (a late entry), rolled up into a corrected version."""
    date, time = earlier_today(200)
    late = api(stack, "POST", "/entries", nurse, json={
        "program": "ccm", "activity": "record-review", "date": date, "time": time, "minutes": 20})
    assert late.status_code == 201, late.text
    api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH})
    return late


def test_a_correction_after_write_back_replaces_the_claim_the_fhir_way(tmp_path, pg_template) -> None:
    with fresh_database("sqlite", tmp_path, pg_template) as url, running_stack(url, tmp_path) as stack:
        nurse, biller, first_entry = month_with_one_call(stack)
        approve_once(stack, biller)
        first = search_one(stack, "Claim", ident("claim", "v1"))
        assert first["status"] == "active"

        # Time recorded after the write-back is late; the rollup proposes a corrected claim.
        late = late_review(stack, nurse, biller)
        assert late.json()["late"] is True
        html = billing_page(stack, biller)
        assert "late" in html and "version 2" in html
        approve_once(stack, biller)

        second = search_one(stack, "Claim", ident("claim", "v2"))
        assert [(i["productOrService"]["coding"][0]["code"], i["quantity"]["value"]) for i in second["item"]] == \
            [("99490", 1), ("99439", 1)]
        assert second["related"][0]["claim"]["reference"] == f"Claim/{first['id']}"
        assert second["related"][0]["relationship"]["coding"][0]["code"] == "prior"
        old = backend_read(stack, f"Claim/{first['id']}")
        assert old["status"] == "entered-in-error"
        assert count(stack, "Claim", ident("claim", "v1")) == 1
        # What supported the replaced claim is retired with it; the new version's records are the live ones.
        assert search_one(stack, "Observation", ident("minutes", "ccm", "v1"))["status"] == "entered-in-error"
        assert search_one(stack, "Observation", ident("minutes", "ccm", "v2"))["status"] == "final"
        old_bill = search_one(stack, "DocumentReference", ident("superbill", "v1"))
        new_bill = search_one(stack, "DocumentReference", ident("superbill", "v2"))
        assert (old_bill["status"], new_bill["status"]) == ("superseded", "current")
        assert new_bill["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/"
                                                                                     f"{old_bill['id']}"}}]
        assert {"reference": f"DocumentReference/{new_bill['id']}"} in [i["valueReference"]
                                                                      for i in second["supportingInfo"]]

        # The late entry turns out to be a mistake: voided, the month is corrected again (version 3).
        late_id = late.json()["entries"][0]["id"]
        task = business_identifier("activity", "sandbox", late_id)
        assert search_one(stack, "Task", task)["status"] == "completed"
        voided = api(stack, "POST", f"/entries/{late_id}/void", nurse, json={"reason": "logged on the wrong patient"})
        assert voided.status_code == 200, voided.text
        api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH})
        approve_once(stack, biller)
        third = search_one(stack, "Claim", ident("claim", "v3"))
        assert [(i["productOrService"]["coding"][0]["code"], i["quantity"]["value"]) for i in third["item"]] == \
            [("99490", 1)]
        assert search_one(stack, "Claim", ident("claim", "v2"))["status"] == "entered-in-error"
        assert search_one(stack, "Task", task)["status"] == "entered-in-error", "the voided activity is withdrawn"
        kept = business_identifier("activity", "sandbox", first_entry)
        assert search_one(stack, "Task", kept)["status"] == "completed", "the activity still counting stays"
        assert [c for c in live_claims(stack) if c["status"] == "active"] == [third]


def live_claims(stack: Stack) -> list[dict]:
    """Every Claim of the patient in the EHR."""
    found = backend_read(stack, f"Claim?patient=Patient/{PATIENT}")
    return [e["resource"] for e in found.get("entry") or []]


def test_a_correction_approved_before_the_first_version_was_sent_withdraws_it(tmp_path, pg_template) -> None:
    with fresh_database("sqlite", tmp_path, pg_template) as url, running_stack(url, tmp_path) as stack:
        nurse, biller, _ = month_with_one_call(stack)
        # The EHR fails every write while version 1 is approved: its resources wait in the outbox.
        httpx.post(f"{stack.sandbox_url}/_sandbox/faults",
                   json={"match": "POST /fhir", "kind": "500", "count": 50}).raise_for_status()
        try:
            approve_once(stack, biller)
        finally:
            httpx.delete(f"{stack.sandbox_url}/_sandbox/faults").raise_for_status()
        assert count(stack, "Claim", ident("claim", "v1")) == 0

        late_review(stack, nurse, biller)
        html = billing_page(stack, biller)
        approved = api(stack, "POST", f"/claims/{claim_id(html)}/approve", biller, json={"note": "corrected"})
        assert approved.status_code == 200, approved.text
        assert "withdrawn" in approved.json()["message"]

        # Version 1 never reaches the EHR, even once the outbox is retried: only version 2 is there.
        assert count(stack, "Claim", ident("claim", "v1")) == 0
        assert count(stack, "Observation", ident("minutes", "ccm", "v1")) == 0
        assert [c["identifier"][0]["value"].rsplit(":", 1)[-1] for c in live_claims(stack)] == ["v2"]
        html = billing_page(stack, biller)
        assert "withdrawn" in html


def test_superbill_and_export_commands_after_approval(month_end, tmp_path) -> None:
    stack, biller, profile = month_end
    approve_once(stack, biller)
    import os
    import subprocess
    import sys

    env = {**os.environ, "SMART_APP_DATABASE_URL": stack.settings.database_url,
           "SMART_APP_DATA_DIR": str(tmp_path), "SMART_APP_SECRET_KEY": "k" * 40}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "smart_app.cli", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    for fmt in ("pdf", "csv", "html"):
        out = tmp_path / f"superbill.{fmt}"
        made = cli("superbill", "--org", "sandbox", "--month", MONTH, "--format", fmt, "--out", str(out))
        assert made.returncode == 0, made.stderr
        data = out.read_bytes()
        if fmt == "pdf":
            assert data.startswith(b"%PDF")
        else:
            assert b"99490" in data
    assert b"<style>" in (tmp_path / "superbill.html").read_bytes(), "a saved page carries its stylesheet"
    exported = cli("export", "--org", "sandbox", "--month", MONTH, "--format", "ndjson")
    assert exported.returncode == 0, exported.stderr
    import json

    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    kinds = {r["resourceType"] for r in lines}
    assert {"DocumentReference"} <= kinds
    assert all(any(t["system"] == "urn:smart-app:delivery" for t in r["meta"]["tag"]) for r in lines)
    expected_claim_kind = {"open": "Claim", "strict": "Claim", "epic-like": "Claim",
                           "oracle-like": "ChargeItem"}[profile]
    assert expected_claim_kind in kinds
    if profile == "epic-like":
        # The EHR took no claim, so the export is where the biller gets it.
        (claim,) = [r for r in lines if r["resourceType"] == "Claim"]
        assert claim["meta"]["tag"][0]["code"] == "export-only"
    none_month = cli("superbill", "--org", "sandbox", "--month", "2001-01", "--format", "pdf",
                     "--out", str(tmp_path / "x.pdf"))
    assert none_month.returncode == 2 and "No approved claims" in none_month.stderr

    # The month is in the audit chain: who launched, recorded, rolled up, approved, sent and exported, and the
    # chain vouches for every ledger row and claim version.
    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout
    assert re.search(r"; [1-9]\d* ledger rows match it\.", verified.stdout)
    tail = cli("audit", "tail", "-n", "500").stdout
    nurse, biller = "Practitioner/pr-nurse", "Practitioner/pr-biller"
    for actor, action in ((nurse, "launch"), (nurse, "entry.recorded"), (biller, "claims.proposed"),
                          (biller, "rollup.run"), (biller, "claim.approved"), ("smart-app", "writeback.sent"),
                          ("command-line:", "export")):
        assert re.search(rf"  {re.escape(actor)}\S*  {re.escape(action)}  ", tail), (actor, action)


def test_an_ehr_that_takes_no_update_says_the_replaced_charge_items_must_be_voided_by_hand(tmp_path,
                                                                                          pg_template) -> None:
    with fresh_database("sqlite", tmp_path, pg_template) as url, \
            running_stack(url, tmp_path, profile="oracle-like") as stack:
        nurse, biller, _ = month_with_one_call(stack)
        approve_once(stack, biller)
        first = search_one(stack, "ChargeItem", ident("charge", "99490", "v1"))
        late_review(stack, nurse, biller)
        approve_once(stack, biller)
        assert count(stack, "ChargeItem", ident("charge", "99439", "v2")) == 1
        # The EHR takes no ChargeItem update: the old one stays billable there, and the biller is told so.
        assert search_one(stack, "ChargeItem", ident("charge", "99490", "v1"))["status"] == "billable"
        html = billing_page(stack, biller)
        assert f"ChargeItem/{first['id']} is still live there" in html
        assert "mark it entered-in-error in the EHR by hand" in html
        assert re.search(r'<tr class="delivery-not-accepted delivery-act"><td>ChargeItem \(retire\)</td>\s*'
                         r'<td>not-accepted: <strong>action needed</strong>', html)
