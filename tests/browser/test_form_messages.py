"""At 1024x768 in the chart's iframe: each form's error or success shows beside that form, old messages are
cleared by the next submit, and the keyboard focus stays on the control the person used."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.test_capture_flow import app_frame, cross_site  # noqa: F401 - the module's stack fixture
from tests.stack import Stack

MESSAGES = "xpath=following-sibling::div[contains(@class, 'form-messages')][1]"


@pytest.fixture
def small_page(chromium: object) -> Iterator[object]:
    context = chromium.new_context(viewport={"width": 1024, "height": 768})
    yield context.new_page()
    context.close()


def focused_text(frame) -> str:
    return frame.locator("body").evaluate("() => document.activeElement ? document.activeElement.textContent : ''")


def test_each_forms_message_shows_beside_it_and_focus_stays(cross_site: Stack, small_page) -> None:  # noqa: F811
    frame = app_frame(small_page, cross_site, "bhi-phq9-by-phone")
    scale = frame.locator(".capture-scale form")
    frame.get_by_text("Record another scale's total score").click()
    scale.get_by_label("Scale").select_option("PHQ-2")
    scale.get_by_label("Total score").fill("30")
    scale.get_by_label("Total score").evaluate("el => el.removeAttribute('max')")
    scale.get_by_role("button", name="Record score").click()
    beside = scale.locator(MESSAGES)
    beside.get_by_role("alert").filter(has_text="from 0 to 6").wait_for(timeout=10000)
    # Nothing lands in the capture box, far from the form.
    assert frame.locator(".capture").get_by_role("alert").filter(has_text="from 0 to 6").count() == 0
    assert focused_text(frame) == "Record score"
    form_box, alert_box = scale.bounding_box(), beside.get_by_role("alert").bounding_box()
    assert 0 <= alert_box["y"] - (form_box["y"] + form_box["height"]) < 40

    scale.get_by_label("Total score").fill("5")
    scale.get_by_role("button", name="Record score").click()
    # The page is re-rendered: the form is found again, reopened, and its success replaces the old error.
    scale = frame.locator(".capture-scale form")
    scale.locator(MESSAGES).get_by_role("status").filter(has_text="PHQ-2 score 5 recorded").wait_for(timeout=10000)
    assert frame.get_by_role("alert").filter(has_text="from 0 to 6").count() == 0
    assert focused_text(frame) == "Record score"

    # The next form's error clears the old success message.
    manual = frame.locator(".manual-entry form")
    frame.get_by_text("Add time manually").click()
    manual.get_by_label("Activity").select_option("patient-call")
    manual.get_by_label("Start time", exact=True).fill("09:00")
    manual.get_by_label("Minutes", exact=True).fill("5")
    manual.get_by_label("Date", exact=True).evaluate("el => el.removeAttribute('max')")
    manual.get_by_label("Date", exact=True).fill("2099-01-01")
    manual.get_by_role("button", name="Record time").click()
    manual.locator(MESSAGES).get_by_role("alert").filter(has_text="future").wait_for(timeout=10000)
    assert frame.get_by_text("PHQ-2 score 5 recorded").count() == 0
    assert focused_text(frame) == "Record time"

    # A quick log's success shows beside its own button, and the manual entry's error is gone.
    quick = frame.locator(".quick-log form", has_text="Patient or caregiver call")
    quick.get_by_role("button").click()
    quick = frame.locator(".quick-log form", has_text="Patient or caregiver call")
    quick.locator(MESSAGES).get_by_role("status").filter(has_text="Recorded").wait_for(timeout=10000)
    assert frame.get_by_role("alert").filter(has_text="future").count() == 0
    assert focused_text(frame).startswith("Patient or caregiver call")

    # A second quick log ending now would overlap the first: the app says so beside it and lets the person choose.
    other = frame.locator(".quick-log form", has_text="Communication with another provider")
    other.get_by_role("button").click()
    beside = other.locator(MESSAGES)
    beside.get_by_role("alert").filter(has_text="would overlap your time").wait_for(timeout=10000)
    assert frame.locator(".entries tbody tr").count() == 1
    beside.get_by_role("button", name="before that time").click()
    other = frame.locator(".quick-log form", has_text="Communication with another provider")
    other.locator(MESSAGES).get_by_role("status").filter(has_text="Recorded").wait_for(timeout=10000)
    assert frame.locator(".entries tbody tr").count() == 2
    # The capture forms now start from this person's last activity for this patient.
    assert frame.locator("form.start-timer").get_by_label("Activity").input_value() == "provider-communication"


def test_a_message_whose_form_is_gone_shows_under_its_section(cross_site: Stack, small_page) -> None:  # noqa: F811
    frame = app_frame(small_page, cross_site, "ccm-two-chronic")
    if frame.get_by_role("button", name="Discard timer").count():
        frame.get_by_role("button", name="Discard timer").click()
        frame.get_by_role("button", name="Discard timer").wait_for(state="detached", timeout=10000)
    frame.locator("form.start-timer").get_by_label("Activity").select_option("record-review")
    frame.get_by_role("button", name="Start timer").click()
    frame.get_by_role("button", name="Discard timer").click()
    section = frame.locator("section.capture .section-messages")
    section.get_by_role("status").filter(has_text="Timer discarded").wait_for(timeout=10000)
    assert frame.locator("body").evaluate("() => document.activeElement.id") == "capture-title"
