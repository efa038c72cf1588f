"""Threat (to availability and to what leaks): an EHR authorization that expired or was revoked.

When the EHR no longer honours the session's tokens, or the app's own session has ended, the page
and the API say to relaunch from the chart, with a 401, and never show a stack trace or internals.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from smart_app.crypto import TokenBox
from smart_app.db import utcnow
from smart_app.launch.models import AppSession
from tests.security.helpers import Launched, database, launch, no_stack_trace
from tests.stack import TEST_SECRET, Stack

RELAUNCH = "Relaunch the app from the patient"


def revoke_at_the_ehr(session: Launched, which: str) -> None:
    with database(session.stack) as db:
        row = db.get(AppSession, session.id_hash)
        token = TokenBox(TEST_SECRET).open(row.access_token_enc if which == "access" else row.refresh_token_enc)
    httpx.post(f"{session.stack.sandbox_url}/_sandbox/revoke", json={"token": token}).raise_for_status()


def set_session(session: Launched, **values: object) -> None:
    with database(session.stack) as db:
        db.execute(update(AppSession).where(AppSession.id_hash == session.id_hash).values(**values))


def page_and_api(session: Launched) -> tuple[httpx.Response, httpx.Response]:
    page = httpx.get(f"{session.stack.app_url}/patient", headers=session.bearer, timeout=20)
    return page, session.api("GET", "/month")


def assert_relaunch(page: httpx.Response, api: httpx.Response, api_too: bool = True) -> None:
    assert page.status_code == 401, page.text
    assert RELAUNCH in page.text and no_stack_trace(page.text)
    if api_too:
        assert api.status_code == 401, api.text
        error = api.json()["error"]
        assert RELAUNCH in error["hint"] and no_stack_trace(api.text)


@pytest.mark.parametrize("case", ["access token revoked", "access token expired, refresh token revoked",
                                  "session ended"])
def test_an_expired_or_revoked_authorization_asks_for_a_relaunch(secure_stack: Stack, case: str) -> None:
    session = launch(secure_stack, "bhi-depression-phq9", user="pr-nurse")
    if case == "access token revoked":
        revoke_at_the_ehr(session, "access")
        page, api = page_and_api(session)
        # The API answers from the app's own records, so only the page (which reads the EHR) notices.
        assert_relaunch(page, api, api_too=False)
        assert "EHR" in page.text
        return
    if case.startswith("access token expired"):
        revoke_at_the_ehr(session, "refresh")
        set_session(session, token_expires_at=utcnow() - timedelta(minutes=5))
    else:
        set_session(session, expires_at=utcnow() - timedelta(seconds=1))
    assert_relaunch(*page_and_api(session))


def token_requests(stack: Stack) -> list[dict]:
    """The app's requests to the EHR's token endpoint, from the sandbox's request log."""
    log = httpx.get(f"{stack.sandbox_url}/_sandbox/requests").json()
    return [r for r in log if (r["method"], r["path"]) == ("POST", "/auth/token")
            and r["client_id"] == stack.organization.client_id]


def test_an_expired_access_token_is_refreshed_without_the_user_noticing(secure_stack: Stack) -> None:
    session = launch(secure_stack, "bhi-depression-phq9", user="pr-nurse")
    with database(secure_stack) as db:
        before = db.get(AppSession, session.id_hash)
    asked_before = len(token_requests(secure_stack))
    set_session(session, token_expires_at=utcnow() - timedelta(minutes=5))
    page, api = page_and_api(session)
    assert page.status_code == 200 and api.status_code == 200
    with database(secure_stack) as db:
        after = db.get(AppSession, session.id_hash)
    assert len(token_requests(secure_stack)) == asked_before + 1, "one refresh at the EHR's token endpoint"
    assert after.refresh_count == before.refresh_count + 1
    assert after.token_expires_at > utcnow()
    box = TokenBox(TEST_SECRET)
    assert box.open(after.access_token_enc) != box.open(before.access_token_enc), "a new access token is kept"
