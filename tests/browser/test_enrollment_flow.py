"""In a real browser, inside the EHR's iframe: a decline without a reason is refused beside its form; with the
reason it is recorded, the program's status reads "declined" and consent is offered only behind "record consent
anyway"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.test_capture_flow import app_frame
from tests.databases import fresh_database
from tests.stack import Stack, running_stack


@pytest.fixture(scope="module")
def enroll_stack(tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("enrollment")
    with fresh_database("sqlite", tmp, pg_template) as url, \
            running_stack(url, tmp, app_host="127.0.0.1", sandbox_host="localhost") as stack:
        yield stack


def test_a_decline_is_recorded_in_the_iframe_and_consent_moves_behind_record_anyway(enroll_stack: Stack,
                                                                                     page) -> None:
    frame = app_frame(page, enroll_stack, "ccm-no-consent")
    section = frame.locator("section.consent")
    assert "not yet offered" in section.locator("ul.enrollment").inner_text()
    frame.get_by_text("Offered, declined or not a candidate").click()
    form = frame.locator(".record-enrollment form")
    form.get_by_label("Program").select_option("ccm")
    form.get_by_label("What happened").select_option("declined")
    form.get_by_role("button", name="Record").click()
    frame.get_by_role("alert").filter(has_text="Say why the patient declined").wait_for(timeout=10000)

    form = frame.locator(".record-enrollment form")
    if not form.is_visible():
        frame.get_by_text("Offered, declined or not a candidate").click()
    form.get_by_label("Program").select_option("ccm")
    form.get_by_label("What happened").select_option("declined")
    form.get_by_label("Reason", exact=False).fill("cost sharing")
    form.get_by_role("button", name="Record").click()
    frame.get_by_text("Recorded that the patient declined CCM").first.wait_for(timeout=10000)
    statuses = frame.locator("section.consent ul.enrollment")
    statuses.filter(has_text="declined").wait_for(timeout=10000)
    assert "reason: cost sharing" in statuses.inner_text()
    anyway = frame.locator("details.consent-anyway")
    assert anyway.count() == 1 and "Record consent anyway (CCM" in anyway.locator("summary").inner_text()
    offered = frame.locator(".capture-consent select[name=program] option").all_inner_texts()
    assert "CCM" not in offered
