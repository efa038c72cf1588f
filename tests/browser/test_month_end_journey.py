"""The whole path a practice walks, in a real browser with the EHR and the app on two sites: launch
from the chart, see eligibility, log time, watch the threshold met; the biller signs in on their own,
rolls up the month and approves; the Claim is in the EHR."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.quick_log import quick_log
from tests.databases import fresh_database
from tests.stack import Stack, running_stack


@pytest.fixture(scope="module")
def ehr(tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("journey")
    with fresh_database("postgresql", tmp, pg_template) as url, \
            running_stack(url, tmp, app_host="127.0.0.1", sandbox_host="localhost") as stack:
        yield stack


def open_app(page, stack: Stack, user: str):
    page.goto(f"{stack.chart_url('ccm-two-chronic')}?user={user}")
    frame = page.frame_locator("iframe")
    frame.get_by_role("heading", name="Capture time").wait_for(timeout=20000)
    return frame


def sign_in_as_biller(page, stack: Stack, person: str = "Pat Kowalski"):
    """The biller opens the app's billing page in a tab of its own and signs in at the EHR."""
    page.goto(f"{stack.app_url}/billing")
    page.get_by_role("heading", name="Sign in").wait_for(timeout=20000)
    page.get_by_role("link", name=person).first.click()
    page.get_by_role("heading", name="Month end").wait_for(timeout=20000)
    return page


def test_from_chart_to_claim_in_the_ehr(ehr: Stack, page) -> None:
    frame = open_app(page, ehr, "pr-nurse")
    ccm = frame.locator("article.program", has_text="Chronic care management (non-complex)")
    assert "On track" in ccm.inner_text()
    quick_log(frame, "Medication reconciliation, 15 min")
    frame.locator("#bar-ccm-99490[value='15']").wait_for(timeout=10000)
    quick_log(frame, "Patient or caregiver call, 5 min")
    billable = frame.locator("article.program.status-billable", has_text="Chronic care management (non-complex)")
    billable.wait_for(timeout=10000)
    assert "99490" in billable.inner_text()

    billing = sign_in_as_biller(page.context.new_page(), ehr)
    billing.get_by_role("button", name="Run the rollup").click()
    billing.get_by_role("status").filter(has_text="Rollup of").wait_for(timeout=20000)
    billing.get_by_role("button", name="Approve and send").click()
    billing.get_by_role("status").filter(has_text="Approved").wait_for(timeout=20000)
    assert "Claim (claim)" in billing.locator(".deliveries").first.inner_text()
    assert "Approved by Pat Kowalski" in billing.locator("article", has_text="99490").first.inner_text()

    page.goto(f"{ehr.chart_url('ccm-two-chronic')}?view=billing")
    table = page.locator("table").first
    table.wait_for(timeout=10000)
    text = table.inner_text()
    assert "Claim/" in text and "99490 x1" in text
    assert "DocumentReference/" in text
