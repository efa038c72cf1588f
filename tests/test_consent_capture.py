"""Consent and chronicity attestations captured in the chart change what the rules decide."""

from __future__ import annotations

import datetime as dt
import re

import httpx

from tests.stack import Stack, launch_token, new_browser
from tests.test_capture_api import api, launch
from tests.test_patient_page import card

ALL_ELEMENTS = {"explained_availability": True, "explained_cost_sharing": True,
                "explained_right_to_stop": True, "explained_one_practitioner": True}


def page(stack: Stack, headers: dict) -> str:
    with new_browser() as browser:
        return browser.get(f"{stack.app_url}/patient", headers=headers).text


def test_consent_needs_every_element_then_unblocks_ccm_and_reaches_the_ehr(stack: Stack) -> None:
    headers, _ = launch(stack, "ccm-no-consent", user="pr-care-manager")
    title = "Chronic care management (non-complex)"
    assert "status-needs-action" in card(page(stack, headers), title)
    today = dt.date.today().isoformat()
    partial = api(stack, "POST", "/consents", headers, json={
        "program": "ccm", "method": "verbal", "obtained_on": today, "explained_availability": True})
    assert partial.status_code == 422
    assert "cost sharing" in partial.json()["error"]["message"]

    made = api(stack, "POST", "/consents", headers, json={
        "program": "ccm", "method": "verbal", "obtained_on": today, **ALL_ELEMENTS})
    assert made.status_code == 201, made.text
    consent = made.json()["consent"]
    assert consent["writeback_status"] == "written", consent
    assert "written to the EHR" in made.json()["message"]
    html = page(stack, headers)
    assert "status-in-progress" in card(html, title)
    assert "no consent on file" not in card(html, title)

    token, _ = launch_token(stack, "ccm-no-consent")
    found = httpx.get(f"{stack.fhir_base}/Consent", params={"patient": "ccm-no-consent"},
                      headers={"Authorization": f"Bearer {token}"}).json()
    ours = [e["resource"] for e in found.get("entry", [])
            if any(i.get("value") == consent["id"] for i in e["resource"].get("identifier", []))]
    assert len(ours) == 1
    assert ours[0]["status"] == "active" and ours[0]["policyRule"]

    again = api(stack, "POST", "/consents", headers, json={
        "program": "ccm", "method": "written", "obtained_on": today, **ALL_ELEMENTS})
    assert again.status_code == 409
    assert "already consented" in again.json()["error"]["message"]


def test_withdrawal_is_recorded_and_ccm_stays_billable_this_month(stack: Stack) -> None:
    headers, _ = launch(stack, "ccm-no-consent", user="pr-care-manager")
    html = page(stack, headers)
    consent_id = re.search(r'data-api="/api/v1/consents/([^/"]+)/withdraw"', html)
    assert consent_id, "the active consent offers a withdrawal form"
    withdrawn = api(stack, "POST", f"/consents/{consent_id.group(1)}/withdraw", headers,
                    json={"on": dt.date.today().isoformat(), "note": "patient declined further calls"})
    assert withdrawn.status_code == 200, withdrawn.text
    assert "stays billable to the end of the month" in withdrawn.json()["message"]
    assert "no consent on file" not in card(page(stack, headers), "Chronic care management (non-complex)")


def test_attesting_an_undetermined_condition_counts_it(stack: Stack) -> None:
    headers, _ = launch(stack, "ccm-undetermined-snomed", user="pr-billing-md")
    html = page(stack, headers)
    assert "Conditions the rules could not classify" in html
    condition = re.search(r'name="condition_id" value="([^"]+)"', html).group(1)
    title = "Chronic care management (non-complex)"
    assert "undetermined" in card(html, title)
    made = api(stack, "POST", "/attestations", headers, json={"condition_id": condition, "chronic": True})
    assert made.status_code == 201, made.text
    after = page(stack, headers)
    assert "status-in-progress" in card(after, title)
    assert "Conditions the rules could not classify" not in after
