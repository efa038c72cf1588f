"""A quick log as a person makes one in the chart: one click, and where it would overlap the person's own time,
the choice to record it just before that time (quick logs end now; the app never moves them silently)."""

from __future__ import annotations

MESSAGES = "xpath=following-sibling::div[contains(@class, 'form-messages')][1]"


def quick_log(frame, name: str) -> str:
    """Click the quick log button `name` ("Patient or caregiver call, 5 min"); the message shown beside it."""
    form = frame.locator(".quick-log form").filter(has=frame.get_by_role("button", name=name))
    form.get_by_role("button", name=name).click()
    beside = form.locator(MESSAGES)
    beside.locator(".live:not(:empty)").first.wait_for(timeout=10000)
    if "would overlap your time" in beside.locator("[role=alert]").inner_text():
        beside.get_by_role("button", name="before that time").click()
        form = frame.locator(".quick-log form").filter(has=frame.get_by_role("button", name=name))
        beside = form.locator(MESSAGES)
        beside.get_by_role("status").filter(has_text="Recorded").wait_for(timeout=10000)
    return beside.locator("[role=status]").inner_text()
