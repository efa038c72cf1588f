"""Issue 18's acceptance in a real browser, the EHR and the app on two sites: the care manager drafts a care plan
from a template for the CCM patient, the billing practitioner signs it, the patient copy PDF opens, the CarePlan
reaches the sandbox EHR once, and the month's CCM card no longer warns about the care plan."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator

import httpx
import pypdf
import pytest

from smart_app.billing.care_plan_resources import plan_identifier
from tests.browser.test_roles import api_status
from tests.databases import fresh_database
from tests.stack import Stack, running_stack
from tests.test_capture_api import earlier_today
from tests.test_consent_capture import ALL_ELEMENTS

PATIENT = "ccm-no-consent"
CCM = "Chronic care management (non-complex)"
WARNING = "no active care plan on file"


@pytest.fixture(scope="module")
def ehr(tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("care-plan-browser")
    with fresh_database("sqlite", tmp, pg_template) as url, \
            running_stack(url, tmp, app_host="127.0.0.1", sandbox_host="localhost") as stack:
        yield stack


def open_app(page, stack: Stack, user: str):
    page.goto(f"{stack.chart_url(PATIENT)}?user={user}")
    frame = page.frame_locator("iframe")
    frame.get_by_role("heading", name="Capture time").wait_for(timeout=20000)
    return frame


def open_care_plan(frame) -> None:
    frame.get_by_role("link", name="Open the care plan").click()
    frame.get_by_role("heading", name=re.compile("Comprehensive care plan")).wait_for(timeout=20000)


def fetch_pdf(frame, href: str) -> dict:
    """GET the link's address from inside the app's page, as the page's script authenticates; the answer."""
    return frame.locator("body").evaluate(
        """async (el, href) => {
             const r = await fetch(href, {headers: window.smartApp.headers(), credentials: "same-origin"});
             const bytes = new Uint8Array(await r.arrayBuffer());
             let text = "";
             for (const b of bytes) { text += String.fromCharCode(b); }
             return {status: r.status, type: r.headers.get("content-type"), data: btoa(text)};
           }""", href)


def test_the_care_plan_from_draft_to_the_ehr(ehr: Stack, page) -> None:
    # The month so far: the CCM consent and 25 minutes, so the CCM card is billable but for the missing plan.
    manager = open_app(page, ehr, "pr-care-manager")
    date, _ = earlier_today(0)
    consent = api_status(manager, "/api/v1/consents", {"program": "ccm", "method": "verbal", "obtained_on": date,
                                                        **ALL_ELEMENTS})
    assert consent["status"] == 201, consent
    day, time = earlier_today(200)
    entry = api_status(manager, "/api/v1/entries", {"program": "ccm", "activity": "care-plan-update", "date": day,
                                                    "time": time, "minutes": 25})
    assert entry["status"] == 201, entry
    manager = open_app(page, ehr, "pr-care-manager")
    assert WARNING in manager.locator("article.program", has_text=CCM).inner_text()

    # The care manager drafts the plan from the hypertension template.
    open_care_plan(manager)
    manager.get_by_label("Start again from a template").select_option(label="Hypertension")
    manager.get_by_role("button", name="Use template").click()
    manager.get_by_text("Filled in from the hypertension template").wait_for(timeout=20000)
    manager.get_by_role("button", name="Save draft").click()
    manager.get_by_text("Saved as draft version 1").wait_for(timeout=20000)
    assert manager.get_by_role("button", name=re.compile("Sign and establish")).count() == 0

    # The billing practitioner signs it; the plan is written to the EHR in the same request.
    doctor = open_app(page, ehr, "pr-billing-md")
    open_care_plan(doctor)
    doctor.get_by_role("button", name="Sign and establish version 1").click()
    doctor.get_by_text("Care plan established as version 2").wait_for(timeout=30000)
    written = doctor.locator(".care-plan-ehr")
    written.wait_for(timeout=20000)
    assert re.search(r"Written to the EHR as CarePlan/\S+ with \d+ Goals?", written.inner_text())

    # The patient copy opens: a PDF whose first page is the plain-language summary.
    link = doctor.get_by_role("link", name="Patient copy (PDF)")
    href = link.get_attribute("href")
    answer = fetch_pdf(doctor, href)
    assert answer["status"] == 200 and answer["type"] == "application/pdf"
    first = pypdf.PdfReader(io.BytesIO(base64.b64decode(answer["data"]))).pages[0].extract_text()
    assert "Your care plan in brief" in first and "Your goals" in first and "Home blood pressure average" in first

    # Once in the EHR, with its identifier per version.
    version_id = href.split("version=", 1)[1]
    identifier = plan_identifier(ehr.organization.id, version_id)
    found = httpx.get(f"{ehr.sandbox_url}/_sandbox/resources/CarePlan",
                      params={"identifier": f"{identifier['system']}|{identifier['value']}"}, timeout=20)
    assert found.json()["total"] == 1

    # The month's CCM card no longer warns about the care plan.
    doctor.get_by_role("link", name="Back to the patient's month").click()
    card = doctor.locator("article.program", has_text=CCM)
    card.wait_for(timeout=20000)
    assert WARNING not in card.inner_text()
