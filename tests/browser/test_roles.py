"""Roles in a real browser, the EHR and the app on two sites: the nurse launched from a chart is refused the
billing page and the rollup; the care manager sees the panel; the administrator grants the nurse the biller
role, and still the nurse cannot approve a claim with their own minutes; the practice's biller signs in on
their own (SMART standalone launch) and approves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.quick_log import quick_log
from tests.browser.test_month_end_journey import open_app, sign_in_as_biller
from tests.databases import fresh_database
from tests.stack import Stack, running_stack

PATIENT = "ccm-two-chronic"


@pytest.fixture(scope="module")
def ehr(tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("roles")
    with fresh_database("sqlite", tmp, pg_template) as url, \
            running_stack(url, tmp, app_host="127.0.0.1", sandbox_host="localhost") as stack:
        yield stack


def api_status(frame, path: str, body: dict | None = None) -> dict:
    """POST to the app's API from inside the app's own page, as its script does; the status and error."""
    return frame.locator("body").evaluate(
        """async (el, [path, body]) => {
             const r = await fetch(path, {method: "POST", headers: window.smartApp.headers(
                 {"Content-Type": "application/json", "X-CSRF-Token": window.smartApp.csrf}),
                 body: JSON.stringify(body || {})});
             const data = await r.json();
             return {status: r.status, message: (data.error || {}).message || data.message || ""};
           }""", [path, body])


def test_each_person_does_what_their_role_allows(ehr: Stack, page) -> None:
    # The nurse (LPN, clinical staff) logs time from the chart: 20 minutes, CCM billable.
    nurse = open_app(page, ehr, "pr-nurse")
    assert "Signed in as Tomas Delgado (clinician)" in nurse.locator(".signed-in").inner_text()
    quick_log(nurse, "Medication reconciliation, 15 min")
    nurse.locator("#bar-ccm-99490[value='15']").wait_for(timeout=10000)
    quick_log(nurse, "Patient or caregiver call, 5 min")
    nurse.locator("article.program.status-billable", has_text="Chronic care management (non-complex)").wait_for(
        timeout=10000)
    # ... is offered neither the panel nor the billing review, and refused both if they try.
    assert nurse.get_by_role("link", name="Billing review").count() == 0
    assert nurse.get_by_role("link", name="Care-team panel").count() == 0
    refused = api_status(nurse, "/api/v1/billing/rollup", {"month": "2026-01"})
    assert refused["status"] == 403 and "needs the biller role" in refused["message"], refused
    nurse.locator("body").evaluate("() => { location.href = '/billing'; }")
    nurse.get_by_role("heading", name="Not allowed").wait_for(timeout=20000)
    assert "needs the biller role" in nurse.locator("body").inner_text()
    assert "Users page" in nurse.locator("body").inner_text()

    # The care manager sees the panel, with their own patients.
    manager = open_app(page, ehr, "pr-care-manager")
    manager.get_by_role("link", name="Care-team panel").click()
    manager.get_by_role("heading", name="Care-team panel").wait_for(timeout=20000)
    assert "Your patients" in manager.locator("body").inner_text()
    assert manager.locator("th[scope=row]", has_text="Harold").count() == 1

    # The administrator (the physician-owner) grants the nurse the biller role on the Users page.
    admin = open_app(page, ehr, "pr-billing-md")
    admin.get_by_role("link", name="Users and roles").click()
    admin.get_by_role("heading", name="Users and roles").wait_for(timeout=20000)
    grant = admin.locator("form.grant")
    grant.get_by_label("EHR user").fill("Practitioner/pr-nurse")
    grant.get_by_label("Role").select_option("biller")
    grant.get_by_role("button", name="Grant").click()
    admin.get_by_role("status").filter(has_text="now holds the biller role").wait_for(timeout=20000)

    # The biller signs in on their own and rolls the month up.
    billing = sign_in_as_biller(page.context.new_page(), ehr)
    assert "Signed in as Pat Kowalski (biller)" in billing.locator(".signed-in").inner_text()
    billing.get_by_role("button", name="Run the rollup").click()
    billing.get_by_role("status").filter(has_text="Rollup of").wait_for(timeout=20000)

    # The nurse, now a biller too, may open the billing review but not approve their own minutes.
    page.bring_to_front()
    nurse = open_app(page, ehr, "pr-nurse")
    assert "Tomas Delgado (biller, clinician)" in nurse.locator(".signed-in").inner_text()
    nurse.get_by_role("link", name="Billing review").click()
    nurse.get_by_role("heading", name="Month end").wait_for(timeout=20000)
    nurse.get_by_role("button", name="Approve and send").click()
    nurse.get_by_role("alert").filter(has_text="carries 20 minutes you recorded").wait_for(timeout=20000)

    # The biller approves it: who approved, and when, shows on the claim.
    billing.bring_to_front()
    billing.reload()
    billing.get_by_role("button", name="Approve and send").click()
    billing.get_by_role("status").filter(has_text="Approved").wait_for(timeout=20000)
    assert "Approved by Pat Kowalski" in billing.locator("article", has_text="99490").first.inner_text()
