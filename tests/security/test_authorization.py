"""Who may do what: one table of every route and command, enforced over real HTTP, and roles granted in the app."""

from __future__ import annotations

import argparse
import json

import httpx
import pytest
from sqlalchemy import select
from starlette.routing import Mount, Route

from smart_app.cli import build_parser
from smart_app.errors import ConfigError
from smart_app.ledger.records import AuditEventRow
from smart_app.web.app import create_app
from smart_app.web.authorization import CLI_COMMANDS, ROUTES, protect
from tests.security.helpers import database, launch, smart_app_command
from tests.stack import Stack, biller_headers, new_browser, sign_in, top_level_browser

PAGES = ("/billing", "/panel", "/panel.csv", "/admin/users", "/billing/superbill.pdf")
BILLER_APIS = ("/billing/rollup", "/billing/deliver", "/claims/some-claim/approve", "/claims/some-claim/hold",
               "/outbox/some-row/retry")


def cli_commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    """Every leaf command of the CLI, as `org check`, `users grant`..."""
    found: set[str] = set()
    for action in parser._actions:  # argparse keeps its subcommands here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= cli_commands(sub, f"{prefix}{name} ") or {f"{prefix}{name}"}
    return found


def test_every_route_and_every_command_has_its_entry_in_the_table(secure_stack: Stack) -> None:
    app = create_app(secure_stack.settings)
    served = set()
    for route in app.routes:
        if isinstance(route, Mount):
            served.add(("GET", route.path))
        else:
            assert isinstance(route, Route)
            served |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    assert served == set(ROUTES), "every route has exactly one entry, and the table lists no route the app lacks"
    assert cli_commands(build_parser()) == set(CLI_COMMANDS)


def test_an_unlisted_route_stops_the_app_from_starting() -> None:
    async def endpoint(request: object) -> None:
        raise AssertionError("never served")

    with pytest.raises(ConfigError, match="POST /api/v1/new-thing has no entry in the authorization table"):
        protect([Route("/api/v1/new-thing", endpoint, methods=["POST"])])


def test_a_nurse_launched_from_the_chart_is_refused_billing_panel_and_administration(secure_stack: Stack) -> None:
    nurse = launch(secure_stack, user="pr-nurse")
    assert "Billing review" not in nurse.page and "Care-team panel" not in nurse.page
    with new_browser() as browser:
        for path in PAGES:
            page = browser.get(f"{secure_stack.app_url}{path}", headers=nurse.bearer)
            assert page.status_code == 403, (path, page.text)
            assert "Tomas Delgado (clinician)" in page.text and "Users page" in page.text, path
            assert "Harold" not in page.text, "no patient data on a refusal"
    for path in (*BILLER_APIS, "/admin/roles"):
        refused = nurse.api("POST", path, json={"month": "2026-11", "note": "x", "user": "Practitioner/pr-nurse",
                                                "role": "biller"})
        assert refused.status_code == 403, (path, refused.text)
        error = refused.json()["error"]
        assert "role" in error["message"] and "Ask an administrator of Sandbox Family Practice" in error["hint"]


def test_the_biller_signs_in_on_their_own_and_reaches_the_billing_pages_only(secure_stack: Stack) -> None:
    with top_level_browser() as browser:
        first = browser.get(f"{secure_stack.app_url}/billing?month=2026-11", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/signin?next=%2Fbilling%3Fmonth%3D2026-11"
        page = sign_in(browser, secure_stack, "pr-biller", next_path="/billing?month=2026-11")
        assert page.status_code == 200 and str(page.url).endswith("/billing?month=2026-11"), page.text
        assert "Signed in as <strong>Pat Kowalski</strong> (biller)" in page.text
        assert browser.get(f"{secure_stack.app_url}/panel").status_code == 200
        assert browser.get(f"{secure_stack.app_url}/admin/users").status_code == 403
        patient = browser.get(f"{secure_stack.app_url}/patient")
        assert patient.status_code == 403 and "opened from a patient&#39;s chart" in patient.text
    headers = biller_headers(secure_stack)
    recorded = httpx.post(f"{secure_stack.app_url}/api/v1/entries", headers=headers, timeout=20,
                          json={"program": "ccm", "activity": "patient-call", "ending_now": True, "minutes": 5})
    assert recorded.status_code == 403 and "opened from a patient's chart" in recorded.json()["error"]["message"]


def test_a_sign_in_returns_only_to_the_apps_own_pages(secure_stack: Stack) -> None:
    with top_level_browser() as browser:
        for elsewhere in ("https://evil.example/billing", "//evil.example/billing", "/patient", "/api/v1/month"):
            page = sign_in(browser, secure_stack, "pr-biller", next_path=elsewhere)
            assert str(page.url) == f"{secure_stack.app_url}/billing", elsewhere


def _audit(stack: Stack, action: str) -> list[dict]:
    with database(stack) as db:
        rows = db.scalars(select(AuditEventRow).where(AuditEventRow.action == action)).all()
        return [{"actor": r.actor, "subject": r.subject, **json.loads(r.detail)} for r in rows]


def test_an_administrator_grants_and_revokes_a_role_with_effect_at_once_and_audited(secure_stack: Stack) -> None:
    admin = launch(secure_stack, user="pr-billing-md")
    assert "Users and roles" in admin.page
    nurse = launch(secure_stack, user="pr-nurse")
    users = httpx.get(f"{secure_stack.app_url}/admin/users", headers=admin.bearer, timeout=20)
    assert users.status_code == 200 and "Tomas Delgado" in users.text and "Practitioner/pr-nurse" in users.text

    granted = admin.api("POST", "/admin/roles", json={"user": "Practitioner/pr-nurse", "role": "biller",
                                                      "note": "covers billing on Fridays"})
    assert granted.status_code == 201, granted.text
    # The nurse's session, launched before the grant, reaches the billing review at once; still a clinician.
    page = httpx.get(f"{secure_stack.app_url}/billing", headers=nurse.bearer, timeout=20)
    assert page.status_code == 200 and "Tomas Delgado</strong> (biller, clinician)" in page.text
    assert any(e["subject"] == "Practitioner/pr-nurse" and e["role"] == "biller" and e["kind"] == "app"
               and e["actor"] == "Practitioner/pr-billing-md" for e in _audit(secure_stack, "role.granted"))

    revoked = admin.api("POST", "/admin/roles/revoke", json={"user": "Practitioner/pr-nurse", "role": "biller"})
    assert revoked.status_code == 200, revoked.text
    assert httpx.get(f"{secure_stack.app_url}/billing", headers=nurse.bearer, timeout=20).status_code == 403
    assert any(e["subject"] == "Practitioner/pr-nurse" and e["role"] == "biller"
               for e in _audit(secure_stack, "role.revoked"))
    again = admin.api("POST", "/admin/roles/revoke", json={"user": "Practitioner/pr-nurse", "role": "biller"})
    assert again.status_code == 422 and "holds no granted biller role" in again.json()["error"]["message"]
    unknown = admin.api("POST", "/admin/roles", json={"user": "Practitioner/pr-nurse", "role": "boss"})
    assert unknown.status_code == 422 and "App roles: clinician" in unknown.json()["error"]["hint"]


def test_roles_are_granted_and_listed_from_the_command_line(secure_stack: Stack, monkeypatch, capsys) -> None:
    status, out = smart_app_command(secure_stack, monkeypatch, capsys, "users", "grant", "--org", "sandbox",
                                    "Practitioner/pr-psych-consultant", "time:care-manager", "--name", "Samir Haddad")
    assert status == 0 and "holds the care-manager time role" in out, out
    consultant = launch(secure_stack, "cocm-depression-anxiety", user="pr-psych-consultant")
    assert consultant.api("GET", "/month").json()["role"] == "care-manager", "the granted time role wins"
    status, out = smart_app_command(secure_stack, monkeypatch, capsys, "users", "list", "--org", "sandbox")
    assert status == 0 and "Practitioner/pr-psych-consultant\ttime:care-manager" in out
    assert "Practitioner/pr-biller\tbiller\tseeded by the organization file" in out
    status, out = smart_app_command(secure_stack, monkeypatch, capsys, "users", "revoke", "--org", "sandbox",
                                    "Practitioner/pr-psych-consultant", "time:care-manager")
    assert status == 0, out
    assert consultant.api("GET", "/month").json()["role"] == "psychiatric-consultant"
    status, out = smart_app_command(secure_stack, monkeypatch, capsys, "users", "grant", "--org", "sandbox",
                                    "Practitioner/pr-nurse", "chief")
    assert status == 2 and "'chief' is not a role" in out and "what to do:" in out
    assert any(e["actor"].startswith("operator") for e in _audit(secure_stack, "role.granted"))


def test_with_several_organizations_the_sign_in_asks_which_one(secure_stack: Stack) -> None:
    from dataclasses import replace

    from smart_app.launch.organizations import save_organizations

    other = replace(secure_stack.organization, id="org-other-clinic", name="Other Clinic",
                    issuer="http://127.0.0.1:9/fhir")
    with database(secure_stack) as db:
        save_organizations(db, [other])
    page = httpx.get(f"{secure_stack.app_url}/signin", params={"next": "/panel"}, timeout=20)
    assert page.status_code == 200 and "Choose your organization" in page.text
    assert 'href="/signin?org=org-other-clinic&amp;next=%2Fpanel"' in page.text
    assert f'href="/signin?org={secure_stack.organization.id}&amp;next=%2Fpanel"' in page.text
    unknown = httpx.get(f"{secure_stack.app_url}/signin", params={"org": "nope"}, timeout=20)
    assert unknown.status_code == 404 and "No organization &#39;nope&#39; is installed" in unknown.text
