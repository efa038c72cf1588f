"""The care-plan editor in the chart over real HTTP (sandbox EHR and app): seeded from the chart and a template,
drafted by the care manager, refused to the nurse's signature, established by the billing practitioner; the review
date shows on the patient page."""

from __future__ import annotations

import html as html_lib
import re

from tests.stack import Stack, new_browser
from tests.test_capture_api import api, launch

PATIENT = "ccm-two-chronic"


def plan_page(stack: Stack, headers: dict, query: str = "") -> str:
    with new_browser() as browser:
        answer = browser.get(f"{stack.app_url}/patient/care-plan{query}", headers=headers)
    assert answer.status_code == 200, answer.text
    return html_lib.unescape(answer.text)


def fields(html: str) -> dict[str, object]:
    form = html[html.index('data-api="/api/v1/care-plans"'):]
    data: dict[str, object] = {name: value for name, value in re.findall(
        r'<textarea id="cp-\w+" name="(\w+)"[^>]*>(.*?)</textarea>', form, re.S)}
    data["template"] = re.search(r'name="template" value="([^"]*)"', form).group(1)
    data["review_every_months"] = int(re.search(r'name="review_every_months"[^>]*value="(\d+)"', form).group(1))
    return data


def test_the_care_manager_drafts_and_only_the_billing_practitioner_establishes(stack: Stack) -> None:
    manager, _ = launch(stack, PATIENT, user="pr-care-manager")
    html = plan_page(stack, manager)
    assert "No care plan is established yet" in html
    draft = fields(html)
    # Seeded from the chart's active problems and the template of the first condition a template fits.
    assert draft["template"] in {"diabetes", "hypertension", "heart-failure", "copd", "depression"}
    assert draft["problems"] and " | " in str(draft["goals"]) and " | " in str(draft["interventions"])
    other = fields(plan_page(stack, manager, "?template=copd"))
    assert other["template"] == "copd" and "Inhaler technique" in str(other["interventions"])

    missing = api(stack, "POST", "/care-plans", manager, json={**draft, "goals": "A1c below 7"})
    assert missing.status_code == 422 and "description | target | date" in missing.json()["error"]["message"]
    saved = api(stack, "POST", "/care-plans", manager, json={**draft, "prognosis": "Fair, with support."})
    assert saved.status_code == 201, saved.text
    version = saved.json()["care_plan"]
    assert version["version"] == 1 and version["status"] == "draft"

    refused = api(stack, "POST", f"/care-plans/{version['id']}/sign", manager, json={})
    assert refused.status_code == 403 and "Only the billing practitioner" in refused.json()["error"]["message"]
    html = plan_page(stack, manager)
    assert "waits for the billing practitioner's signature" in html and "Sign and establish" not in html
    assert "Fair, with support." in html

    doctor, _ = launch(stack, PATIENT, user="pr-billing-md")
    html = plan_page(stack, doctor)
    assert f'data-api="/api/v1/care-plans/{version["id"]}/sign"' in html
    signed = api(stack, "POST", f"/care-plans/{version['id']}/sign", doctor, json={})
    assert signed.status_code == 201, signed.text
    established = signed.json()["care_plan"]
    assert established["version"] == 2 and established["status"] == "established" and established["review_due"]

    html = plan_page(stack, doctor)
    assert "Version 2, established" in html and f"review due <strong>{established['review_due']}" in html
    assert len(re.findall(r"<tr><td>\d+</td>", html)) == 2
    # People by the name and credentials the EHR gives them, not by reference.
    assert "established" in html and "Adaeze Okafor" in html and "by Practitioner/pr-billing-md" not in html
    with new_browser() as browser:
        patient = html_lib.unescape(browser.get(f"{stack.app_url}/patient", headers=doctor).text)
    assert 'href="/patient/care-plan"' in patient and f"next review {established['review_due']}" in patient


def test_the_biller_cannot_open_or_draft_the_care_plan(stack: Stack) -> None:
    biller, _ = launch(stack, PATIENT, user="pr-biller")
    assert api(stack, "POST", "/care-plans", biller, json={}).status_code in (401, 403)
    with new_browser() as browser:
        assert browser.get(f"{stack.app_url}/patient/care-plan", headers=biller).status_code == 403


def test_the_signed_plan_lifts_the_ccm_cards_care_plan_warning(stack: Stack) -> None:
    from tests.test_capture_api import earlier_today
    from tests.test_consent_capture import ALL_ELEMENTS
    from tests.test_patient_page import card

    patient, title = "ccm-no-consent", "Chronic care management (non-complex)"
    manager, _ = launch(stack, patient, user="pr-care-manager")
    date, _ = earlier_today(0)
    assert api(stack, "POST", "/consents", manager, json={
        "program": "ccm", "method": "verbal", "obtained_on": date, **ALL_ELEMENTS}).status_code == 201
    day, time = earlier_today(200)
    assert api(stack, "POST", "/entries", manager, json={
        "program": "ccm", "activity": "care-plan-update", "date": day, "time": time, "minutes": 25}).status_code == 201

    def ccm_card() -> str:
        with new_browser() as browser:
            return html_lib.unescape(card(browser.get(f"{stack.app_url}/patient", headers=manager).text, title))

    assert "no active care plan on file" in ccm_card()
    draft = fields(plan_page(stack, manager))
    saved = api(stack, "POST", "/care-plans", manager, json=draft)
    assert saved.status_code == 201, saved.text
    assert "no active care plan on file" in ccm_card(), "a draft is not a plan"
    doctor, _ = launch(stack, patient, user="pr-billing-md")
    signed = api(stack, "POST", f"/care-plans/{saved.json()['care_plan']['id']}/sign", doctor, json={})
    assert signed.status_code == 201, signed.text
    assert "no active care plan on file" not in ccm_card()
