"""Sessions inside an EHR iframe: a partitioned __Host- cookie, and a handle for cookie-less browsers."""

from __future__ import annotations

import httpx

from tests.stack import Stack, bearer, new_browser, open_chart, page_handle


def test_session_cookie_has_the_attributes_a_third_party_iframe_needs(stack: Stack) -> None:
    with new_browser() as browser:
        page = open_chart(browser, stack, "ccm-two-chronic")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-smart_app_session=")
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/"):
        assert attribute in cookie
    assert "Domain=" not in cookie


def test_cookie_less_browser_continues_with_the_pages_bearer_handle(stack: Stack) -> None:
    with new_browser() as browser:
        page = open_chart(browser, stack, "ccm-two-chronic")
        # httpx, like Safari without CHIPS here, never sends a Secure cookie over plain http.
        without = browser.get(f"{stack.app_url}/patient")
        assert without.status_code == 401
        assert 'id="recover-form"' in without.text
        with_header = browser.get(f"{stack.app_url}/patient", headers=bearer(page.text))
    assert with_header.status_code == 200
    assert "Care-management programs this month" in with_header.text


def test_reload_recovers_by_posting_the_stored_handle(stack: Stack) -> None:
    with new_browser() as browser:
        page = open_chart(browser, stack, "bhi-depression-phq9")
        # The recover page's script posts the handle it kept, from the app's own origin.
        again = browser.post(f"{stack.app_url}/patient", data={"session_handle": page_handle(page.text)},
                             headers={"Origin": stack.app_url})
    assert again.status_code == 200
    assert "General behavioral health integration" in again.text


def test_a_session_handle_posted_by_another_site_is_ignored(stack: Stack) -> None:
    """Login CSRF: a cross-site form posting an attacker's handle must not plant that session in the browser."""
    with new_browser() as browser:
        attackers = open_chart(browser, stack, "bhi-depression-phq9")
    for origin in ("https://evil.example", "null"):
        planted = httpx.post(f"{stack.app_url}/patient", data={"session_handle": page_handle(attackers.text)},
                             headers={"Origin": origin})
        assert planted.status_code == 401, planted.text
        assert "General behavioral health integration" not in planted.text
        assert "set-cookie" not in planted.headers


def test_a_made_up_handle_gives_nothing(stack: Stack) -> None:
    page = httpx.get(f"{stack.app_url}/patient", headers={"Authorization": "Bearer invented-handle"})
    assert page.status_code == 401
    assert "Relaunch the app" in page.text


def test_pages_forbid_framing_except_by_the_registered_ehr(stack: Stack) -> None:
    with new_browser() as browser:
        page = open_chart(browser, stack, "ccm-two-chronic")
    csp = page.headers["content-security-policy"]
    assert f"frame-ancestors {stack.sandbox_url}" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
