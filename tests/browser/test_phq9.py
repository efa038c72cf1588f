"""A PHQ-9 given item by item in the chart's iframe: with item 9 answered "Several days" the safety alert shows
beside the form at once, and the Observation is already in the sandbox EHR when the answer comes back. At 360 px
the form is answered with the keyboard alone and nothing scrolls sideways."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.billing.test_writeback_e2e import backend_read
from tests.browser.test_capture_flow import app_frame, cross_site  # noqa: F401 - the module's stack fixture
from tests.browser.test_layout import no_sideways_scroll, open_app
from tests.stack import Stack

# Item by item: "Several days" for items 1 to 9 gives a total of 9 and item 9 positive.
ANSWERS = ["Several days"] * 9


def phq9_form(frame):
    return frame.locator("details.scale-form", has_text="Give the PHQ-9").locator("form")


def test_item_9_positive_shows_the_alert_and_the_ehr_already_has_the_observation(cross_site: Stack,  # noqa: F811
                                                                                  page) -> None:
    frame = app_frame(page, cross_site, "bhi-phq9-by-phone")
    form = phq9_form(frame)
    for number, answer in enumerate(ANSWERS):
        form.locator("fieldset").nth(number).get_by_label(answer).check()
    assert form.locator("[data-scale-total] output").inner_text() == "9"
    assert "all answered: Mild" in form.locator("[data-scale-total]").inner_text()
    assert form.locator("[data-scale-safety]").is_visible(), "the form warns before it is recorded"
    form.get_by_role("button", name="Record PHQ-9").click()

    alert = frame.locator(".safety-alert[role=alert]")
    alert.wait_for(timeout=15000)
    text = alert.inner_text()
    assert "Safety alert: PHQ-9 item 9" in text and "Several days" in text
    assert "suicide-risk protocol" in text and "988" in text
    # Beside the form: right after the PHQ-9 it is about, before anything else of the section.
    assert frame.locator("details.scale-form:has-text('Give the PHQ-9') + .safety-alert").count() == 1
    written = re.search(r"in the EHR as Observation/([A-Za-z0-9-]+)", text)
    assert written, f"the alert says where the result went: {text}"

    # Before any further request of the page: the EHR holds it, item 9 among its components. (Read from a thread:
    # Playwright's sync API keeps an event loop running in this one.)
    with ThreadPoolExecutor(1) as pool:
        observation = pool.submit(backend_read, cross_site, f"Observation/{written.group(1)}").result()
    assert observation["valueInteger"] == 9
    item9 = next(c for c in observation["component"] if c["code"]["coding"][0]["code"] == "44260-8")
    assert item9["valueCodeableConcept"]["coding"][0]["code"] == "LA6569-3"
    assert observation["identifier"][0]["system"] == "urn:smart-app:scale"


@pytest.fixture
def narrow_page(chromium: object) -> Iterator[object]:
    context = chromium.new_context(viewport={"width": 360, "height": 740})
    yield context.new_page()
    context.close()


def test_at_360_px_the_form_is_answered_by_keyboard_without_sideways_scroll(cross_site: Stack,  # noqa: F811
                                                                            narrow_page) -> None:
    frame = open_app(narrow_page, cross_site, "bhi-phq9-by-phone", 360)
    frame.locator("details.scale-form", has_text="Give the GAD-7").locator("summary").click()
    form = frame.locator("details.scale-form", has_text="Give the GAD-7").locator("form")
    no_sideways_scroll(frame)
    form.locator("input[type=radio]").first.focus()
    keyboard = narrow_page.keyboard
    for presses in (0, 1, 2, 3, 0, 1, 2):  # each question's answer, by arrow keys, then Tab to the next
        keyboard.press("Space")  # the focused (first) answer
        for _ in range(presses):
            keyboard.press("ArrowRight")
        keyboard.press("Tab")
    assert form.locator("[data-scale-total] output").inner_text() == "9"
    while form.get_by_role("button", name="Record GAD-7").evaluate("el => el !== document.activeElement"):
        keyboard.press("Tab")
    keyboard.press("Enter")
    frame.get_by_text("GAD-7 recorded for").wait_for(timeout=15000)
    frame.locator("table.scale-trend", has_text="GAD-7").wait_for(timeout=10000)
    no_sideways_scroll(frame)
