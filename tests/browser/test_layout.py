"""The patient page in a 420 px EHR sidebar, at 1024x768 and at desktop width: no sideways scroll, the running
timer pinned at the top with its patient's name and a way back to them, entries as a list on narrow widths, and
the consent toggle and checkboxes at least 24x24 px (WCAG 2.2 target size)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_capture_flow import app_frame, cross_site  # noqa: F401 - the module's stack fixture
from tests.stack import Stack

# name: (viewport width, height, width of the app's iframe or None for the sandbox chart's own layout)
SIZES = {"sidebar-360": (360, 740, 360), "sidebar-420": (420, 800, 420),
         "1024x768": (1024, 768, None), "desktop-1440": (1440, 900, None)}


@pytest.fixture(params=list(SIZES))
def sized(chromium: object, request: pytest.FixtureRequest) -> Iterator[tuple[object, int | None]]:
    width, height, frame_width = SIZES[request.param]
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    yield page, frame_width
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"layout-{request.param}.png"), full_page=True)
    context.close()


def open_app(page, stack: Stack, patient_id: str, frame_width: int | None):
    frame = app_frame(page, stack, patient_id)
    if frame_width:
        # The sandbox chart keeps its iframe at least 800 px wide; an EHR sidebar gives the app 420 px.
        page.locator("iframe").evaluate(f"el => {{ el.style.minWidth = '0'; el.style.width = '{frame_width}px'; }}")
        frame.locator("html").evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
    return frame


def rect(locator) -> dict[str, float]:
    """Where an element sits inside the app's own frame (bounding_box() measures from the EHR's page)."""
    return locator.evaluate("el => { const r = el.getBoundingClientRect(); "
                            "return {x: r.x, y: r.y, width: r.width, height: r.height}; }")


def no_sideways_scroll(frame) -> None:
    widths = frame.locator("html").evaluate(
        "el => [el.scrollWidth, el.clientWidth, document.body.scrollWidth]")
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths


def assert_banner_at_top(frame) -> None:
    banner = frame.get_by_role("region", name="Running timer")
    assert abs(rect(banner)["y"]) <= 1
    # Sticky: still at the top of the frame once the page is scrolled to its end.
    frame.locator("html").evaluate("el => window.scrollTo(0, el.scrollHeight)")
    frame.locator("html").evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
    assert frame.locator("html").evaluate("() => window.scrollY") > 0
    assert abs(rect(banner)["y"]) <= 1


def test_layout_timer_banner_and_target_sizes(cross_site: Stack, sized) -> None:  # noqa: F811
    page, frame_width = sized
    frame = open_app(page, cross_site, "ccm-two-chronic", frame_width)
    if frame.get_by_role("button", name="Discard timer").count() == 0:
        frame.locator("form.start-timer").get_by_label("Activity").select_option("record-review")
        frame.get_by_role("button", name="Start timer").click()
        frame.get_by_role("button", name="Discard timer").wait_for(timeout=10000)
    if frame.locator(".entries tbody tr").count() == 0:
        frame.get_by_role("button", name="Medication reconciliation, 15 min").click()
        frame.locator(".entries tbody tr").first.wait_for(timeout=10000)

    # This patient's own timer: named, and the banner's link leads to its stop and discard controls.
    banner = frame.get_by_role("region", name="Running timer")
    assert "Harold" in banner.inner_text() and "Whitaker" in banner.inner_text()
    assert banner.get_by_role("link", name="Stop or discard it").get_attribute("href") == "#timer-controls"
    no_sideways_scroll(frame)
    width = frame.locator("html").evaluate("el => el.clientWidth")
    row = frame.locator(".entries tbody tr").first
    for cell in ("Status", "Actions"):
        box = rect(row.locator(f"td[data-label='{cell}']"))
        assert box["width"] > 0 and box["x"] + box["width"] <= width + 1, (cell, box, width)
    correct = row.locator("details.correct > summary")
    correct_box = rect(correct)
    assert correct_box["x"] + correct_box["width"] <= width + 1 and correct_box["height"] >= 24
    if frame_width:
        # Narrow: each entry reads as a list item with its labels, not as a table row.
        assert row.evaluate("el => getComputedStyle(el).display") == "block"
        status = row.locator("td[data-label='Status']")
        assert status.evaluate("el => getComputedStyle(el, '::before').content") == '"Status"'
    assert_banner_at_top(frame)

    # Another patient's chart: the banner names the timer's patient and links to their chart in the EHR.
    frame = open_app(page, cross_site, "ccm-no-consent", frame_width)
    banner = frame.get_by_role("region", name="Running timer")
    banner.wait_for(timeout=10000)
    assert "Harold" in banner.inner_text()
    link = banner.get_by_role("link", name="chart to stop it")
    assert link.get_attribute("href") == cross_site.chart_url("ccm-two-chronic")
    assert link.get_attribute("target") == "_top"
    no_sideways_scroll(frame)
    toggle = rect(frame.locator(".capture-consent > summary"))
    assert toggle["height"] >= 24 and toggle["width"] >= 24, toggle
    for box in frame.locator(".capture-consent input[type=checkbox]").all():
        size = rect(box)
        assert size["height"] >= 24 and size["width"] >= 24, size
    assert_banner_at_top(frame)

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("iframe").screenshot(path=str(ARTIFACTS / f"layout-other-patient-{frame_width or 'wide'}.png"))
    # Brought into view from the banner's link, the timer's controls are not hidden behind the banner.
    frame = open_app(page, cross_site, "ccm-two-chronic", frame_width)
    frame.get_by_role("region", name="Running timer").get_by_role("link").click()
    frame.locator("html").evaluate("() => new Promise(r => setTimeout(r, 300))")
    controls, banner = rect(frame.locator("#timer-controls")), rect(frame.get_by_role("region", name="Running timer"))
    assert controls["y"] >= banner["y"] + banner["height"] - 1, (controls, banner)
    assert frame.locator("body").evaluate("() => document.activeElement.id") == "timer-controls"

    frame = open_app(page, cross_site, "ccm-no-consent", frame_width)
    link = frame.get_by_role("region", name="Running timer").get_by_role("link", name="chart to stop it")
    link.click()
    # The EHR opens the timer's patient, and the app with it.
    page.wait_for_url(cross_site.chart_url("ccm-two-chronic") + "*", timeout=20000)
    page.frame_locator("iframe").get_by_role("button", name="Discard timer").wait_for(timeout=20000)
