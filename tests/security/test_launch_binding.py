"""A launch completes only in the browser that started it (login CSRF), and the EHR's words are shown only there.

The launch page leaves a nonce in a cookie and in the tab's sessionStorage; the callback completes when the
cookie shows it, or when the finishing page posts it from the app's own origin.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx
import pytest

from tests.stack import Stack, finish_launch, iframe_src, launch_page, new_browser, top_level_browser


def attackers_callback(stack: Stack) -> tuple[str, str]:
    """An attacker's own launch, stopped at the EHR's redirect: the callback URL and the attacker's nonce."""
    with new_browser() as attacker:
        chart = attacker.get(stack.chart_url("ccm-two-chronic"), params={"user": "pr-nurse"})
        authorize_url, _, nonce = launch_page(attacker.get(iframe_src(chart.text)))
        back = attacker.get(authorize_url, follow_redirects=False)
    return back.headers["location"], nonce


def test_a_callback_obtained_for_someone_elses_launch_completes_in_no_other_browser(secure_stack: Stack) -> None:
    callback, attackers_nonce = attackers_callback(secure_stack)
    with top_level_browser() as victim:
        # The victim's browser holds no cookie and no sessionStorage entry for this launch.
        landed = victim.get(callback)
        assert landed.status_code == 200 and 'id="finish-launch"' in landed.text
        assert "smart-app-handle" not in landed.text and "set-cookie" not in landed.headers
        posted = finish_launch(victim, secure_stack.app_url, callback, None)
        assert posted.status_code == 400 and "not started in this browser" in posted.text
        guessed = finish_launch(victim, secure_stack.app_url, callback, "a-guess-" + "x" * 30)
        assert guessed.status_code == 400 and "not started in this browser" in guessed.text
        # A page elsewhere posting the attacker's nonce into the victim's browser is refused too.
        query = dict(part.split("=", 1) for part in callback.split("?", 1)[1].split("&"))
        cross_site = victim.post(f"{secure_stack.app_url}/callback", data={**query, "browser_nonce": attackers_nonce},
                                 headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 400 and "Tomas" not in cross_site.text
        assert not any(c.name.endswith("smart_app_session") for c in victim.cookies.jar)
    # The refusals consumed nothing: the launch still completes in the browser that started it.
    with new_browser() as attacker:
        done = finish_launch(attacker, secure_stack.app_url, callback, attackers_nonce)
    assert done.status_code == 200 and "Capture time" in done.text


def test_the_ehrs_error_description_is_shown_only_for_a_launch_of_this_browser(secure_stack: Stack) -> None:
    sentence = "Your account is locked. Call 555-0100 and read out your password"
    forged = {"state": "not-a-launch-of-this-browser", "error": "server_error", "error_description": sentence}
    with new_browser() as browser:
        page = browser.get(f"{secure_stack.app_url}/callback?{urlencode(forged)}")
        # The finishing page only: it carries the parameters in hidden fields to post back, and shows none.
        assert page.status_code == 200 and sentence not in re.sub(r"<input[^>]*>", "", page.text)
        refused = browser.post(f"{secure_stack.app_url}/callback", data=forged,
                               headers={"Origin": secure_stack.app_url})
    assert refused.status_code == 400 and sentence not in refused.text and "Call 555" not in refused.text

    # A launch this browser started, refused by the EHR: its description shows, marked as the EHR's words.
    callback, nonce = attackers_callback(secure_stack)
    state = dict(part.split("=", 1) for part in callback.split("?", 1)[1].split("&"))["state"]
    with new_browser() as browser:
        shown = finish_launch(browser, secure_stack.app_url,
                              "/callback?" + urlencode({"state": state, "error": "server_error",
                                                        "error_description": "Scheduled maintenance until 9 pm"}),
                              nonce)
    assert shown.status_code == 400
    assert "The EHR said: \u201cScheduled maintenance until 9 pm\u201d" in shown.text


def test_the_launch_page_keeps_its_nonce_where_the_browser_allows_and_sends_nothing_else(secure_stack: Stack) -> None:
    with new_browser() as browser:
        chart = browser.get(secure_stack.chart_url("ccm-two-chronic"))
        page = browser.get(iframe_src(chart.text), follow_redirects=False)
    authorize_url, state, nonce = launch_page(page)
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"__Host-smart_app_launch={nonce}; Max-Age=600; Path=/; Secure; HttpOnly")
    assert "SameSite=None; Partitioned" in cookie
    assert nonce not in authorize_url, "the nonce never travels to the EHR"
    assert f"state={state}" in authorize_url
    assert httpx.get(f"{secure_stack.app_url}/static/app.js").text.count("smart-app-launch:") == 3


def test_context_no_fhir_server_would_send_is_refused_at_the_callback() -> None:
    """A hostile EHR's token response: a NUL in the patient id, an id no FHIR server makes, an unprintable user."""
    from smart_app.errors import LaunchError
    from smart_app.launch.flow import _check_ids

    _check_ids("ccm-two-chronic", "enc-1.2", "https://ehr.example.org/fhir/Practitioner/pr-nurse")
    for patient, encounter, user in (("pat\x00ient", None, None), ("x" * 65, None, None), ("p", "a b", None),
                                     ("p", None, "Practitioner/\x00x")):
        with pytest.raises(LaunchError, match="Tell the EHR administrator"):
            _check_ids(patient, encounter, user)
