"""In a real browser, in the chart's third-party iframe: the care manager opens the care plan from the patient page,
sees each seeded line's source, logs the minutes spent on the plan while saving the draft, and the CCM progress bar
moves by those minutes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import fresh_database
from tests.stack import Stack, running_stack


@pytest.fixture(scope="module")
def cross_site(tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("care-plan-time")
    with fresh_database("sqlite", tmp, pg_template) as url, \
            running_stack(url, tmp, app_host="127.0.0.1", sandbox_host="localhost") as stack:
        yield stack


def test_minutes_logged_from_the_care_plan_editor_move_the_ccm_bar(cross_site: Stack, page) -> None:
    page.goto(cross_site.chart_url("ccm-two-chronic"))
    frame = page.frame_locator("iframe")
    frame.get_by_role("heading", name="Capture time").wait_for(timeout=20000)
    assert int(frame.locator("#bar-ccm-99490").get_attribute("value")) == 0

    frame.get_by_role("link", name="Open the care plan").click()
    frame.get_by_role("heading", name="Draft").wait_for(timeout=20000)
    assert "from the EHR: MedicationRequest" in frame.locator("#cp-medication_management-sources").inner_text()
    assert frame.get_by_label("Allergies and intolerances").input_value().startswith("Penicillin")
    editor = frame.locator("form.care-plan-editor")
    editor.get_by_label("Minutes spent on this plan").fill("12")
    editor.get_by_label("Counts toward").select_option("ccm")
    editor.get_by_role("button", name="Save draft").click()
    frame.get_by_text("Saved as draft version 1").wait_for(timeout=10000)
    frame.get_by_text("Recorded").first.wait_for(timeout=10000)

    frame.get_by_role("link", name="Back to the patient's month").click()
    frame.locator("#bar-ccm-99490[value='12']").wait_for(timeout=20000)
