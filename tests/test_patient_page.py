"""The in-chart page: eligibility per program from the EHR's facts and the rule set, with reasons."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from smart_app.ledger.months import Month
from tests.stack import Stack, new_browser, open_chart


def card(html: str, title: str) -> str:
    """The HTML of the program card with this title."""
    match = re.search(r'<article class="program status-[^"]+"[^>]*>\s*<h3[^>]*>' + re.escape(title)
                      + r".*?</article>", html, re.S)
    assert match, f"no card titled {title!r}"
    return match.group(0)


def page_for(stack: Stack, patient_id: str) -> str:
    with new_browser() as browser:
        page = open_chart(browser, stack, patient_id)
    assert page.status_code == 200, page.text
    return page.text


@pytest.mark.parametrize(("patient_id", "title", "status"), [
    ("ccm-two-chronic", "Chronic care management (non-complex)", "in-progress"),
    ("bhi-depression-phq9", "General behavioral health integration", "in-progress"),
    ("complex-ccm-high", "Complex chronic care management", "in-progress"),
    ("ccm-no-consent", "Chronic care management (non-complex)", "needs-action"),
])
def test_program_status_follows_the_patients_facts(stack: Stack, patient_id: str, title: str,
                                                   status: str) -> None:
    html = card(page_for(stack, patient_id), title)
    assert f"status-{status}" in html


def test_missing_consent_is_named_with_what_to_do(stack: Stack) -> None:
    html = card(page_for(stack, "ccm-no-consent"), "Chronic care management (non-complex)")
    assert "no consent on file" in html
    assert "To fix:" in html


def test_progress_bars_show_minutes_against_each_threshold(stack: Stack) -> None:
    html = card(page_for(stack, "ccm-two-chronic"), "Chronic care management (non-complex)")
    bar = re.search(r'<progress id="bar-ccm-99490" max="(\d+)" value="(\d+)"', html)
    assert bar and bar.groups() == ("20", "0")
    assert "99490: 0 of 20 minutes" in html


def test_acute_only_patient_has_no_open_program(stack: Stack) -> None:
    html = page_for(stack, "acute-only")
    assert "None of the programs applies to this patient" in html
    assert "Other programs (7)" in html


def test_days_left_in_the_month_are_shown_as_the_panel_counts_them(stack: Stack) -> None:
    # Today counts (time can still be logged today), as on the panel: 1 on the last day, never 0.
    today = dt.datetime.now(ZoneInfo(stack.organization.timezone)).date()
    left = Month.parse(f"{today:%Y-%m}").days_left(today)
    assert left >= 1
    unit = "day" if left == 1 else "days"
    assert f"{left} {unit} left, today included" in page_for(stack, "pcm-single-complex")
