"""In a real browser, with the EHR and the app on two sites so the iframe is truly third-party:
launch, start and stop a timer, quick-log an activity, and watch the progress bar move."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import fresh_database
from tests.stack import Stack, running_stack


@pytest.fixture(scope="module")
def cross_site(tmp_path_factory, pg_template) -> Iterator[Stack]:
    # localhost and 127.0.0.1 are different sites to a browser: the app's cookies are third-party.
    tmp = tmp_path_factory.mktemp("cross-site")
    with fresh_database("sqlite", tmp, pg_template) as url, \
            running_stack(url, tmp, app_host="127.0.0.1", sandbox_host="localhost") as stack:
        yield stack


def app_frame(page, stack: Stack, patient_id: str):
    page.goto(stack.chart_url(patient_id))
    frame = page.frame_locator("iframe")
    frame.get_by_role("heading", name="Capture time").wait_for(timeout=20000)
    return frame


def bar_value(frame, bar_id: str) -> int:
    return int(frame.locator(f"#{bar_id}").get_attribute("value"))


def test_timer_and_quick_log_in_a_third_party_iframe(cross_site: Stack, page) -> None:
    assert cross_site.sandbox_url.startswith("http://localhost:")
    assert cross_site.app_url.startswith("http://127.0.0.1:")
    frame = app_frame(page, cross_site, "ccm-two-chronic")
    assert bar_value(frame, "bar-ccm-99490") == 0

    # With no history for this person and patient, the activity is theirs to choose, not assumed.
    start = frame.locator("form.start-timer")
    assert start.get_by_label("Activity").input_value() == ""
    start.get_by_label("Activity").select_option("patient-call")
    frame.get_by_role("button", name="Start timer").click()
    frame.get_by_text("Timer running for").wait_for(timeout=10000)
    frame.get_by_role("button", name="Stop and record").click()
    # Under a minute: the app says nothing was recorded rather than inventing a minute.
    frame.get_by_text("less than a minute, so nothing was recorded").wait_for(timeout=10000)
    frame.get_by_text("Timer running for").wait_for(state="detached", timeout=10000)

    frame.get_by_role("button", name="Medication reconciliation, 15 min").click()
    frame.get_by_text("Recorded").first.wait_for(timeout=10000)
    frame.locator("#bar-ccm-99490[value='15']").wait_for(timeout=10000)
    assert bar_value(frame, "bar-ccm-99490") == 15
    assert frame.locator(".entries tbody tr").count() == 1


def test_manual_entry_errors_are_announced_and_nothing_is_saved(cross_site: Stack, page) -> None:
    frame = app_frame(page, cross_site, "pcm-single-complex")
    frame.get_by_text("Add time manually").click()
    form = frame.locator(".manual-entry form")
    form.get_by_label("Activity").select_option("patient-call")
    form.get_by_label("Start time", exact=True).fill("09:00")
    form.get_by_label("Minutes", exact=True).fill("5")
    form.get_by_label("Date", exact=True).fill("2099-01-01")
    # The browser's own max-date check would stop the submit; remove it to reach the server's check.
    form.get_by_label("Date", exact=True).evaluate("el => el.removeAttribute('max')")
    form.get_by_role("button", name="Record time").click()
    alert = frame.get_by_role("alert")
    alert.filter(has_text="future").wait_for(timeout=10000)
    assert frame.locator(".entries tbody tr").count() == 0


def test_consent_captured_in_the_iframe_unblocks_the_program(cross_site: Stack, page) -> None:
    frame = app_frame(page, cross_site, "ccm-no-consent")
    ccm = frame.locator("article.program", has_text="Chronic care management (non-complex)")
    assert "no consent on file" in ccm.inner_text()
    form = frame.locator(".capture-consent form")
    form.get_by_role("button", name="Record consent").click()
    frame.get_by_role("alert").filter(has_text="explain").wait_for(timeout=10000)
    for label in ("that the service is available", "that cost sharing", "that they may stop",
                  "that only one practitioner"):
        form.get_by_label(label).check()
    form.get_by_role("button", name="Record consent").click()
    frame.get_by_text("written to the EHR").first.wait_for(timeout=10000)
    ccm = frame.locator("article.program", has_text="Chronic care management (non-complex)")
    assert "no consent on file" not in ccm.inner_text()
    assert "On track" in ccm.inner_text()


def test_a_phq9_taken_by_phone_is_recorded_in_the_iframe_and_counts(cross_site: Stack, page) -> None:
    frame = app_frame(page, cross_site, "bhi-phq9-by-phone")
    bhi = frame.locator("article.program", has_text="General behavioral health integration")
    assert "no PHQ-9 or GAD-7" in bhi.inner_text()
    form = frame.locator("details.scale-form", has_text="Give the PHQ-9").locator("form")
    for number, answer in enumerate(["Several days", "More than half the days", "Several days", "Not at all",
                                     "Several days", "Not at all", "Several days", "Not at all", "Not at all"]):
        if number != 7:
            form.locator("fieldset").nth(number).get_by_label(answer).check()
    assert form.locator("[data-scale-total] output").inner_text() == "6", "the total adds up as the person answers"
    # The browser's own check would stop the submit with a question unanswered; remove it to reach the server's.
    form.locator("fieldset").nth(7).locator("input").evaluate_all("els => els.forEach(e => e.required = false)")
    form.get_by_role("button", name="Record PHQ-9").click()
    frame.get_by_role("alert").filter(has_text="Item 8 of the PHQ-9").wait_for(timeout=10000)
    form.locator("fieldset").nth(7).get_by_label("Not at all").check()
    form.get_by_role("button", name="Record PHQ-9").click()
    frame.get_by_text("PHQ-9 recorded for").wait_for(timeout=10000)
    frame.locator("table.scale-trend", has_text="Mild").wait_for(timeout=10000)
    bhi = frame.locator("article.program", has_text="General behavioral health integration")
    assert "no PHQ-9 or GAD-7" not in bhi.inner_text()


def test_the_tcm_card_records_a_contact_attempt_and_qmb_status_is_recorded(cross_site: Stack, page) -> None:
    frame = app_frame(page, cross_site, "tcm-recent-discharge")
    tcm = frame.locator("article.program", has_text="Transitional care management")
    # The medication reconciliation is the EHR's Procedure; the attempts are the care team's to record.
    assert "(from the EHR)" in tcm.inner_text()
    attempt = tcm.locator("li.evidence-offer", has_text="attempts to contact the patient")
    attempt.get_by_label("Note").fill("left a voicemail")
    attempt.get_by_role("button", name="Record an attempt").click()
    frame.get_by_text("Recorded the attempt to contact the patient, with your name.").wait_for(timeout=10000)
    tcm = frame.locator("article.program", has_text="Transitional care management")
    assert "attempts on" in tcm.locator("li.evidence-offer", has_text="attempts to contact").inner_text()

    frame = app_frame(page, cross_site, "apcm-bhi-addon")
    qmb = frame.locator("li.evidence-offer", has_text="Qualified Medicare Beneficiary")
    qmb.get_by_label("QMB").select_option("false")
    qmb.get_by_role("button", name="Record QMB status").click()
    frame.get_by_text("Recorded the patient's QMB status, with your name.").wait_for(timeout=10000)
    assert frame.locator("li.evidence-offer", has_text="Qualified Medicare Beneficiary").count() == 0
