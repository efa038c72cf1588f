"""Threat: a key rotation (routine, or after a suspected leak) breaks launches, or a retired key lives on.

The sandbox EHR knows the app by its JWKS URL, as the install guide asks. A launch is started, the
key is rotated with `smart-app keys rotate` (to ES384, so both algorithms are exercised), and that
very launch completes; new launches and token refreshes work; when the overlap ends, the old key
leaves the JWKS and launches still work, signed by the new key alone.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import update

from smart_app.crypto import hash_handle
from smart_app.db import utcnow
from smart_app.launch.keys import signing_key
from smart_app.launch.models import AppSession, SigningKey
from tests.security.helpers import database, launch, smart_app_command
from tests.stack import Stack, finish_launch, iframe_src, launch_page, new_browser, page_handle

APP_MARKER = "Care-management programs this month"


def published_kids(stack: Stack) -> set[str]:
    return {k["kid"] for k in httpx.get(f"{stack.app_url}/.well-known/jwks.json").json()["keys"]}


def test_keys_rotate_without_a_failed_launch(secure_stack: Stack, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with database(secure_stack) as db:
        old_kid = signing_key(db).kid
    assert launch(secure_stack).page

    with new_browser() as browser:
        # A clinician is mid-launch: the EHR has sent the browser back towards the app's callback...
        chart = browser.get(secure_stack.chart_url("ccm-two-chronic"))
        authorize_url, _, nonce = launch_page(browser.get(iframe_src(chart.text), follow_redirects=False))
        back = browser.get(authorize_url, follow_redirects=False)
        callback = back.headers["location"]
        assert urlparse(callback).path == "/callback"
        # ...when the administrator rotates the key.
        status, rotated = smart_app_command(secure_stack, monkeypatch, capsys,
                                            "keys", "rotate", "--alg", "ES384", "--overlap-days", "7")
        assert status == 0, rotated
        finished = finish_launch(browser, secure_stack.app_url, callback, nonce)
    assert finished.status_code == 200, finished.text
    assert APP_MARKER in finished.text
    with database(secure_stack) as db:
        new_kid = signing_key(db).kid
        old = db.get(SigningKey, old_kid)
        assert old is not None and old.retired_at is not None
    assert new_kid != old_kid and new_kid.startswith("es384-")
    assert f"New current key {new_kid}" in rotated and "retired, published until" in rotated
    assert {old_kid, new_kid} <= published_kids(secure_stack), "both keys are published during the overlap"

    # A launch right after works, and so does a token refresh of the session launched before.
    assert APP_MARKER in launch(secure_stack).page
    handle = page_handle(finished.text)
    with database(secure_stack) as db:
        db.execute(update(AppSession).where(AppSession.id_hash == hash_handle(handle))
                   .values(token_expires_at=utcnow() - timedelta(minutes=1)))
    again = httpx.get(f"{secure_stack.app_url}/patient", headers={"Authorization": f"Bearer {handle}"}, timeout=20)
    assert again.status_code == 200, again.text
    with database(secure_stack) as db:
        assert db.get(AppSession, hash_handle(handle)).refresh_count == 1, "the token was refreshed"

    # The overlap ends: the retired key is no longer published, and launches go on with the new key alone.
    with database(secure_stack) as db:
        db.execute(update(SigningKey).where(SigningKey.kid == old_kid).values(expires_at=utcnow()))
    assert published_kids(secure_stack) == {new_kid}
    assert APP_MARKER in launch(secure_stack).page
    status, listed = smart_app_command(secure_stack, monkeypatch, capsys, "keys", "list")
    assert status == 0 and new_kid in listed and old_kid not in listed
