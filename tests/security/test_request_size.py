"""Threat: oversized request bodies exhaust a worker's memory (the app takes 64 KiB at most)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from smart_app.web.body_limit import MAX_BODY_BYTES
from tests.security.helpers import launch, manual_entry
from tests.stack import Stack


def oversized_entry() -> bytes:
    return json.dumps({**manual_entry(), "note": "x" * (MAX_BODY_BYTES + 1)}).encode()


def test_a_body_over_64_kib_is_refused(secure_stack: Stack) -> None:
    session = launch(secure_stack)
    big = session.api("POST", "/entries", content=oversized_entry(),
                      headers={**session.bearer, "Content-Type": "application/json"})
    assert big.status_code == 413
    assert "too large" in big.text


def test_a_chunked_body_over_64_kib_is_refused(secure_stack: Stack) -> None:
    session = launch(secure_stack)
    body = oversized_entry()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    big = httpx.post(f"{secure_stack.app_url}/api/v1/entries", content=chunks(), timeout=20,
                     headers={**session.bearer, "Content-Type": "application/json"})
    assert big.status_code == 413, big.text
