"""The documentation keeps up with the code: every route's rule is on the security page."""

from __future__ import annotations

from pathlib import Path

from smart_app.web.authorization import ROUTES

SECURITY = Path(__file__).resolve().parents[1] / "docs" / "security.md"


def test_the_security_page_lists_every_route_with_who_may_use_it() -> None:
    text = SECURITY.read_text()
    for (method, path), rule in ROUTES.items():
        assert f"| `{method} {path}` | {rule.what} | {rule.describe()}" in text, f"{method} {path} is not documented"
