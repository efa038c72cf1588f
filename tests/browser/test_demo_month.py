"""The demo month in a real browser: two patients billable, the biller approves one (the sandbox bills at
threshold-met), and time logged afterwards for the other is on time, not late; the approved patient's new time is
late and says it goes on a corrected claim."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.quick_log import quick_log
from tests.browser.test_month_end_journey import sign_in_as_biller
from tests.databases import fresh_database
from tests.stack import Stack, running_stack

CCM = "Chronic care management (non-complex)"


@pytest.fixture(scope="module")
def ehr(tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("demo-month")
    with fresh_database("sqlite", tmp, pg_template) as url, \
            running_stack(url, tmp, app_host="127.0.0.1", sandbox_host="localhost") as stack:
        yield stack


def chart(page, stack: Stack, patient: str, user: str):
    page.goto(f"{stack.chart_url(patient)}?user={user}")
    frame = page.frame_locator("iframe")
    frame.get_by_role("heading", name="Capture time").wait_for(timeout=20000)
    return frame


def reach_99490(frame) -> None:
    quick_log(frame, "Medication reconciliation, 15 min")
    frame.locator("#bar-ccm-99490[value='15']").wait_for(timeout=10000)
    quick_log(frame, "Patient or caregiver call, 5 min")
    frame.locator("article.program.status-billable", has_text=CCM).wait_for(timeout=10000)


def test_one_approval_locks_one_patient_month(ehr: Stack, page) -> None:
    first = chart(page, ehr, "ccm-two-chronic", "pr-nurse")
    reach_99490(first)
    other_page = page.context.new_page()
    other = chart(other_page, ehr, "complex-ccm-high", "pr-care-manager")
    reach_99490(other)

    billing = sign_in_as_biller(page.context.new_page(), ehr)
    billing.get_by_role("button", name="Run the rollup").click()
    billing.get_by_role("status").filter(has_text="Rollup of").wait_for(timeout=20000)
    billing.get_by_text("2 ready").wait_for(timeout=10000)
    billing.locator("article.claim[data-patient='ccm-two-chronic']").get_by_role(
        "button", name="Approve and send").click()
    billing.get_by_role("status").filter(has_text="Approved").wait_for(timeout=20000)
    assert "1 ready" in billing.locator(".month-summary").inner_text()

    # The other patient's time after the approval is on time.
    status = quick_log(other, "Patient or caregiver call, 5 min")
    assert "Recorded" in status
    assert "late" not in status and "already approved" not in status
    assert other.locator(".entries .late, span.late").count() == 0

    # The approved patient's time is late, and the page says where it goes.
    status = quick_log(first, "Patient or caregiver call, 5 min")
    assert "already approved" in status and "corrected claim" in status, status
    first.locator("span.late").first.wait_for(timeout=10000)
