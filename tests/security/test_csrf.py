"""Threat: a forged cross-site request rides on the session cookie to record or change time."""

from __future__ import annotations

from tests.security.helpers import launch, manual_entry
from tests.stack import Stack

REFUSED = "did not come from the app's own page"


def test_forged_request_with_the_cookie_alone_is_refused(secure_stack: Stack) -> None:
    session = launch(secure_stack, "ccm-two-chronic", user="pr-nurse")
    cookie_only = {"Cookie": f"__Host-smart_app_session={session.cookie}"}
    # The cookie alone is a valid session for reading (a GET changes nothing)...
    before = session.api("GET", "/month", headers=cookie_only)
    assert before.status_code == 200, before.text
    # ...but a change carried by the cookie alone, as a cross-site form would send it, is refused.
    forged = session.api("POST", "/entries", headers=cookie_only, json=manual_entry())
    assert forged.status_code == 403
    assert REFUSED in forged.json()["error"]["message"]
    timer = session.api("POST", "/timers", headers=cookie_only, json={"program": "ccm", "activity": "patient-call"})
    assert timer.status_code == 403
    after = session.api("GET", "/month", headers=cookie_only).json()
    assert after["entries"] == before.json()["entries"]
    assert after["running_timer"] is None


def test_forged_request_with_a_wrong_csrf_token_is_refused(secure_stack: Stack) -> None:
    session = launch(secure_stack, "ccm-two-chronic", user="pr-nurse")
    other = launch(secure_stack, "ccm-two-chronic", user="pr-nurse")
    cookie = {"Cookie": f"__Host-smart_app_session={session.cookie}"}
    for wrong in ("0" * 64, session.csrf[:-1] + ("0" if session.csrf[-1] != "0" else "1"), other.csrf, ""):
        forged = session.api("POST", "/entries", headers={**cookie, "X-CSRF-Token": wrong}, json=manual_entry())
        assert forged.status_code == 403, wrong
        assert REFUSED in forged.json()["error"]["message"]
    # The session's own token (which only the app's page carries) is accepted: the refusals above are CSRF's.
    made = session.api("POST", "/entries", headers={**cookie, "X-CSRF-Token": session.csrf}, json=manual_entry())
    assert made.status_code == 201, made.text
