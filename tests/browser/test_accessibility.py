"""Issue 14's acceptance at a 420 px EHR sidebar, at 1024x768 and at desktop width: every page a person reaches
(PAGES) passes axe-core's WCAG 2.2 AA rules and never scrolls sideways; on the chart page the running timer's banner
is at the top and each form's error shows beside that form (PAGE_CHECKS, CHART_FORMS); and the timer and a quick log
work by keyboard alone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from smart_app.db import session_factory, transaction
from smart_app.launch.organizations import save_organizations, with_overrides
from tests.browser.axe import report, violations
from tests.browser.conftest import ARTIFACTS
from tests.browser.quick_log import quick_log
from tests.databases import engine_for, fresh_database
from tests.stack import Stack, running_stack

CCM = "ccm-two-chronic"  # the demo's first patient
BHI = "bhi-phq9-by-phone"
TCM = "tcm-recent-discharge"
CARE_MANAGER = "pr-care-manager"
ADMIN = "pr-billing-md"  # the physician-owner, the practice's administrator
BILLER = "Pat Kowalski"
OTHER_ORG = "second-practice"
CHART_PAGE = "chart page (CCM, timer running)"

# name: (viewport width, height, width of the app's iframe in the chart, or None for the chart's own layout)
WIDTHS = {"sidebar-420": (420, 900, 420), "1024x768": (1024, 768, None), "desktop-1440": (1440, 900, None)}


@pytest.fixture(scope="module")
def ehr(tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("accessibility")
    with fresh_database("sqlite", tmp, pg_template) as url, \
            running_stack(url, tmp, app_host="127.0.0.1", sandbox_host="localhost") as stack:
        # A second organization, so the app's own sign-in page asks which (with one it goes straight on).
        with engine_for(url) as engine, transaction(session_factory(engine)) as db:
            save_organizations(db, [with_overrides(stack.organization, id=OTHER_ORG, name="Second Street Practice",
                                                   issuer="https://ehr.second-street.example/fhir")])
        yield stack


@dataclass
class Browsing:
    """One browser context at one width: the tab, and the app's iframe width in the chart (None: the chart's own)."""

    page: object
    name: str
    frame_width: int | None


@pytest.fixture(params=list(WIDTHS))
def browsing(chromium: object, request: pytest.FixtureRequest) -> Iterator[Browsing]:
    width, height, frame_width = WIDTHS[request.param]
    # The app's CSP allows only its own scripts; axe-core comes in as an inline script, so the axe tests'
    # context bypasses the CSP (the app's own CSP is tested in tests/security, not here).
    context = chromium.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    yield Browsing(page, request.param, frame_width)
    context.close()


def settle(doc) -> None:
    doc.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(null))))")


def app_in_chart(browsing: Browsing, stack: Stack, patient_id: str, user: str = CARE_MANAGER):
    """The chart of `patient_id` as `user` (named each time: a sign-in at the EHR changes its default) and the app's
    frame in it."""
    page = browsing.page
    page.goto(f"{stack.chart_url(patient_id)}?user={user}")
    page.frame_locator("iframe").get_by_role("heading", name="Capture time").wait_for(timeout=20000)
    if browsing.frame_width:
        # The sandbox chart keeps its iframe at least 800 px wide; an EHR sidebar gives the app 420 px.
        page.locator("iframe").evaluate(
            f"el => {{ el.style.minWidth = '0'; el.style.width = '{browsing.frame_width}px'; }}")
    frame = page.locator("iframe").element_handle().content_frame()
    settle(frame)
    return frame


def follow(frame, link: str, heading: str):
    """Follow a link of the app's page inside the chart's iframe; the frame once `heading` shows."""
    frame.get_by_role("link", name=link).first.click()
    frame.get_by_role("heading", name=heading).first.wait_for(timeout=20000)
    settle(frame)
    return frame


def with_timer_running(frame) -> None:
    """This patient's timer running, and 20 minutes in the month (entries with their corrections, a billable claim)."""
    # Counted by this person's own entries: other tests' people may have logged time for the patient too.
    if frame.locator(".entries td[data-label='Who']").filter(has_text=re.compile(r"^You\b")).count() == 0:
        quick_log(frame, "Medication reconciliation, 15 min")
        quick_log(frame, "Patient or caregiver call, 5 min")
    if frame.get_by_role("button", name="Discard timer").count() == 0:
        start = frame.locator("form.start-timer")
        start.get_by_label("Activity").select_option("record-review")
        start.get_by_role("button", name="Start timer").click()
        frame.get_by_role("button", name="Discard timer").wait_for(timeout=10000)


def open_all_details(doc) -> None:
    """Unfold every <details>, so axe checks the forms inside them as a person who opens them sees them."""
    doc.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    settle(doc)


# The pages checked at each width: name -> how a person gets there (returns the app's page or frame, ready).
# Pages added later go here, and every check below covers them.
def chart_ccm(b: Browsing, stack: Stack):
    frame = app_in_chart(b, stack, CCM)
    with_timer_running(frame)
    return frame


def patient_bhi(b: Browsing, stack: Stack):
    return app_in_chart(b, stack, BHI)


def care_plan(b: Browsing, stack: Stack):
    return follow(app_in_chart(b, stack, CCM), "Open the care plan", "Care plan")


def panel(b: Browsing, stack: Stack):
    return follow(app_in_chart(b, stack, CCM), "Care-team panel", "Care-team panel")


def admin_users(b: Browsing, stack: Stack):
    return follow(app_in_chart(b, stack, CCM, user=ADMIN), "Users and roles", "Users and roles")


def sign_in(b: Browsing, stack: Stack):
    b.page.goto(f"{stack.app_url}/signin?next=/billing")
    b.page.get_by_role("heading", name="Sign in with your EHR account").wait_for(timeout=20000)
    return b.page


def billing(b: Browsing, stack: Stack):
    """The biller's own sign-in, then the month's claims (rolled up once, with the chart page's 20 minutes)."""
    b.page.goto(f"{stack.app_url}/signin?next=/billing&org={stack.organization.id}")
    b.page.get_by_role("link", name=BILLER).first.click()
    b.page.get_by_role("heading", name="Month end").wait_for(timeout=20000)
    if b.page.get_by_text("No claims yet for this month").count():
        b.page.get_by_role("button", name="Run the rollup").click()
        b.page.get_by_role("status").filter(has_text="Rollup of").wait_for(timeout=20000)
    return b.page


def superbill(b: Browsing, stack: Stack):
    """The month's superbill, once the biller approved the chart page's claim (its month is then locked)."""
    page = billing(b, stack)
    if page.get_by_text("Approved by").count() == 0:
        page.get_by_role("button", name="Approve and send").first.click()
        page.get_by_role("status").filter(has_text="Approved").wait_for(timeout=20000)
    page.get_by_role("link", name="HTML", exact=True).click()
    page.get_by_role("heading").first.wait_for(timeout=20000)
    return page


def patient_tcm(b: Browsing, stack: Stack):
    """A TCM patient: the evidence the rules need, with its forms, inside the program's card."""
    return app_in_chart(b, stack, TCM)


def error_page(b: Browsing, stack: Stack):
    b.page.goto(f"{stack.app_url}/signin?org=no-such-practice")
    b.page.get_by_role("heading", name="Sign-in").wait_for(timeout=20000)
    return b.page


PAGES: dict[str, Callable[[Browsing, Stack], object]] = {
    CHART_PAGE: chart_ccm, "patient page (BHI)": patient_bhi,
    "patient page (TCM, evidence to record)": patient_tcm, "care plan": care_plan, "care-team panel": panel,
    "users and roles": admin_users, "sign-in": sign_in, "billing review": billing, "superbill (HTML)": superbill,
    "error page": error_page}


def sideways_scroll(doc) -> str | None:
    widths = doc.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    return None if widths[0] <= widths[1] else f"scrolls sideways: {widths[0]} px of content in {widths[1]} px"


def test_every_page_at_each_width(ehr: Stack, browsing: Browsing) -> None:
    """Each page of PAGES: axe finds no WCAG 2.2 AA violation, nothing scrolls sideways, a running timer's banner
    opens the page; then the page's own checks (PAGE_CHECKS). One context per width, every finding reported."""
    problems: dict[str, list[str]] = {}
    for name, reach in PAGES.items():
        doc = reach(browsing, ehr)
        found = []
        scroll = sideways_scroll(doc)
        if scroll:
            found.append(scroll)
        # Wherever a person's timer runs (this patient's or another's), its banner opens the page.
        banner = doc.locator(".timer-banner")
        if banner.count() and abs(rect(banner)["y"]) > 1:
            found.append(f"the running timer's banner is not at the top: {rect(banner)}")
        open_all_details(doc)
        found += violations(doc)
        scroll = sideways_scroll(doc)
        if scroll:
            found.append(f"with its folded parts open, {scroll}")
        ARTIFACTS.mkdir(exist_ok=True)
        browsing.page.screenshot(path=str(ARTIFACTS / f"a11y-{browsing.name}-{reach.__name__}.png"), full_page=True)
        if name in PAGE_CHECKS:
            found += PAGE_CHECKS[name](browsing, doc)
        problems[f"{name} at {browsing.name}"] = found
    if any(problems.values()):
        pytest.fail("\n" + report(problems), pytrace=False)


@dataclass(frozen=True)
class FormCase:
    """A form of the chart page submitted invalid: its fields as the person left them, and the error expected."""

    name: str
    form: str  # CSS selector of the form in the app's page
    fields: dict[str, str | bool]  # name -> value typed, option chosen, or box ticked
    error: str  # part of the error that must show beside the form


# Each form of the chart page that a person can get wrong; the browser's own checks (min, max, required) are
# switched off so the server's message is what shows, as it does for what only the server knows. The quick-log
# and discard buttons take no input and so have no wrong way to be sent. Forms added later go here.
CHART_FORMS = [
    FormCase("stop the timer", "form[data-api$='/stop']", {"minutes": "5000"}, "You can record between 1 and"),
    FormCase("start a timer", "form.start-timer", {"activity": ""}, "activity"),
    FormCase("add time manually", ".manual-entry form",
             {"activity": "patient-call", "date": "2099-01-01", "time": "09:00", "minutes": "5"}, "future"),
    FormCase("void an entry", "form[data-api$='/void']", {"reason": "no"}, "reason"),
    FormCase("correct an entry", "form[data-api$='/amend']", {"reason": ""}, "reason"),
    FormCase("record consent", ".capture-consent form", {}, "explain"),
    FormCase("record a declined program", ".record-enrollment form", {"status": "declined", "reason": ""},
             "Say why the patient declined"),
    FormCase("give a PHQ-9 item by item", "form.scale-items", {}, "is not answered"),
    FormCase("record a scale's total", ".capture-scale form", {"scale": "PHQ-2", "score": "30"}, "from 0 to 6"),
]


def fill(form, fields: dict[str, str | bool]) -> None:
    form.evaluate("f => { f.noValidate = true; }")
    for name, value in fields.items():
        field = form.locator(f"[name='{name}']").first
        kind = field.evaluate("el => el.tagName === 'SELECT' ? 'select' : el.type")
        if kind == "select":
            field.select_option(str(value))
        elif kind == "checkbox":
            field.set_checked(bool(value))
        else:
            field.fill(str(value))


def rect(locator) -> dict[str, float]:
    """Where an element sits in its own frame's viewport."""
    return locator.evaluate("el => { const r = el.getBoundingClientRect(); "
                            "return {x: r.x, y: r.y, width: r.width, height: r.height}; }")


def error_beside(frame, case: FormCase) -> str | None:
    """Submit `case`'s form invalid; what is wrong with where (or whether) its error shows, None when all is well."""
    form = frame.locator(case.form).first
    if form.count() == 0:
        return "the form is not on the page"
    fill(form, case.fields)
    form.locator("button[type=submit]").click()
    beside = form.locator("xpath=following-sibling::div[contains(@class, 'form-messages')][1]")
    alert = beside.get_by_role("alert").filter(has_text=case.error)
    try:
        alert.wait_for(timeout=10000)
    except PlaywrightTimeout:
        # The missing error is the finding; the page's alerts say what showed instead.
        shown = [a.inner_text() for a in frame.get_by_role("alert").all() if a.inner_text().strip()]
        return f"no error containing {case.error!r} beside the form within 10 s; alerts shown: {shown}"
    own_section = "el => { const s = el.closest('section'); return s && s.getAttribute('aria-labelledby'); }"
    if form.evaluate(own_section) != alert.evaluate(own_section):
        return "the error shows outside the form's own section"
    others = [a.inner_text() for a in frame.get_by_role("alert").all() if a.inner_text().strip()]
    if len(others) != 1:
        return f"other messages stay on the page beside this error: {others}"
    box, shown = rect(form), rect(alert)
    if not 0 <= shown["y"] - (box["y"] + box["height"]) < 40 or shown["height"] == 0:
        return f"the error is not right under the form: form {box}, error {shown}"
    focused = frame.evaluate("() => document.activeElement && document.activeElement.type")
    if focused != "submit":
        return f"focus left the form's button (now on a {focused!r})"
    return None


def chart_checks(browsing: Browsing, frame) -> list[str]:
    """The chart page with its timer running: the banner in the first screen, the skip link above it, and each
    form's error beside that form (CHART_FORMS)."""
    found = []
    # In the EHR's page, opened afresh (scrolled to its top), the banner starts within the first screen.
    browsing.page.evaluate("() => window.scrollTo(0, 0)")
    on_screen = frame.locator(".timer-banner").element_handle().bounding_box()
    if not 0 <= on_screen["y"] < browsing.page.viewport_size["height"]:
        found.append(f"the timer banner is not in the EHR page's first screen: {on_screen}")
    # The skip link, focused, shows above the pinned banner (WCAG 2.2 focus not obscured).
    skip = frame.locator("a.skip")
    skip.focus()
    if not skip.evaluate("el => { const r = el.getBoundingClientRect(); "
                         "return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === el; }"):
        found.append("the focused skip link is hidden under the timer banner")
    for case in CHART_FORMS:
        problem = error_beside(frame, case)
        if problem:
            found.append(f"{case.name}: {problem}")
    # With an error showing (its colours, its live region), the page still passes axe.
    found += [f"with an error showing, {line}" for line in violations(frame)]
    return found


# Checks beyond axe's and the width's, by page (run after them, with the page's folded parts open).
PAGE_CHECKS: dict[str, Callable[[Browsing, object], list[str]]] = {CHART_PAGE: chart_checks}


NURSE = "pr-nurse"


def focused(frame) -> dict[str, str]:
    """The app's focused element (empty when the focus is outside the app's frame), and whether it shows focus."""
    return frame.evaluate("""() => {
        const el = document.activeElement;
        if (!document.hasFocus() || !el || el === document.body) { return {text: "", id: "", outline: "", hidden: ""}; }
        // WCAG 2.2 focus not obscured: the pinned timer banner must not cover what has the focus.
        const banner = document.querySelector(".timer-banner");
        const under = banner && !banner.contains(el) &&
            el.getBoundingClientRect().top < banner.getBoundingClientRect().bottom - 1;
        return {text: (el.innerText || el.value || "").trim(), id: el.id, outline: getComputedStyle(el).outlineStyle,
                hidden: under ? "under the timer banner" : ""};
    }""")


def tab_to(page, frame, text: str, *, back: bool = False, most: int = 60) -> int:
    """Press Tab (Shift+Tab with `back`) until the app's button or link reading `text` has the focus; the presses."""
    for presses in range(1, most + 1):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        now = focused(frame)
        if now["text"] == text:
            # WCAG 2.4.7: where the focus is shows.
            assert now["outline"] not in ("", "none"), f"{text!r} has the focus but shows no outline"
            assert not now["hidden"], f"{text!r} has the focus but is {now['hidden']}"
            return presses
    raise AssertionError(f"{most} presses of {'Shift+Tab' if back else 'Tab'} never reached {text!r}")


def test_timer_and_quick_log_by_keyboard_alone(ehr: Stack, chromium: object) -> None:
    # A real context (the app's CSP in force), at 1024x768, as the nurse; only the keyboard from here on.
    context = chromium.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    try:
        page.goto(f"{ehr.chart_url(CCM)}?user={NURSE}")
        page.frame_locator("iframe").get_by_role("heading", name="Capture time").wait_for(timeout=20000)
        frame = page.locator("iframe").element_handle().content_frame()
        quick = "Medication reconciliation, 15 min"
        entries = frame.locator(".entries tbody tr").count()

        # From the EHR's page into the app, to a quick log: Enter records it, the message is beside it, focus stays.
        tab_to(page, frame, quick)
        page.keyboard.press("Enter")
        form = frame.locator(".quick-log form").filter(has=frame.get_by_role("button", name=quick))
        form.locator("xpath=following-sibling::div[contains(@class, 'form-messages')][1]").get_by_role(
            "status").filter(has_text="Recorded").wait_for(timeout=10000)
        assert focused(frame) | {"outline": ""} == {"text": quick, "id": "", "outline": "", "hidden": ""}

        # Back to Start timer (the activity now defaults to the one just used): Enter starts it, focus stays.
        assert tab_to(page, frame, "Start timer", back=True) <= 3
        assert frame.locator("form.start-timer [name=activity]").input_value() == "medication-reconciliation"
        page.keyboard.press("Enter")
        frame.get_by_role("button", name="Discard timer").wait_for(timeout=10000)
        frame.get_by_role("region", name="Running timer").wait_for(timeout=10000)
        assert focused(frame) | {"outline": ""} == {"text": "Start timer", "id": "", "outline": "", "hidden": ""}

        # The timer's controls sit just above: Space on Stop and record stops it; the form is gone, so the focus
        # goes to the heading of the section the person was working in, where the message shows.
        assert tab_to(page, frame, "Stop and record", back=True) <= 6
        page.keyboard.press(" ")
        frame.locator("section.capture .section-messages").get_by_role("status").filter(
            has_text="nothing was recorded").wait_for(timeout=10000)
        now = focused(frame)
        assert now["id"] == "capture-title" and not now["hidden"], now
        assert frame.get_by_role("region", name="Running timer").count() == 0
        assert frame.locator(".entries tbody tr").count() == entries + 1
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "a11y-keyboard.png"), full_page=True)
        context.close()
