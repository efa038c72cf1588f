"""Threat: one organization's session reads or changes another organization's records.

Two organizations share one app and one database, each with its own EHR (two sandbox EHRs seeded
from the same fixtures, so patient and practitioner ids collide on purpose: only the organization
separates them). A nurse's session launched from organization A's EHR asks for what the same nurse,
on the same patient id, recorded at organization B.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.records import ConsentRow
from smart_app.paths import data_path
from smart_app.sandbox import SandboxClient, SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from tests.live_server import reserve_socket, serve_on, url_of
from tests.security.helpers import database, launch, manual_entry
from tests.stack import Stack

PATIENT = "cocm-depression-anxiety"


@pytest.fixture(scope="module")
def second_org(secure_stack: Stack) -> Iterator[Stack]:
    """Organization B: its own sandbox EHR, issuer, client id and frame origin, installed in the same app."""
    sock = reserve_socket()
    ehr_url = url_of(sock, "localhost")
    org = Organization(id="org-b", name="Second Practice", issuer=f"{ehr_url}/fhir", client_id="care-minutes-org-b",
                       client_auth="private_key_jwt", frame_origins=(ehr_url,),
                       billing_practitioner="Practitioner/pr-billing-md",
                       # The same EHR product codes its roles the same way: B maps them as A does.
                       role_map=secure_stack.organization.role_map)
    settings = secure_stack.settings
    client = SandboxClient(client_id=org.client_id, redirect_uris=[settings.redirect_uri],
                           auth_method="private_key_jwt", jwks_url=f"{secure_stack.app_url}/.well-known/jwks.json")
    with database(secure_stack) as db:
        save_organizations(db, [org])
    sandbox = create_sandbox(SandboxConfig(base_url=ehr_url, fixtures_dir=data_path("fixtures"), clients=[client],
                                           app_launch_url=settings.launch_url))
    with serve_on(sock, sandbox):
        yield replace(secure_stack, sandbox_url=ehr_url, organization=org)


def test_a_session_of_one_organization_cannot_reach_anothers_records(secure_stack: Stack, second_org: Stack) -> None:
    at_b = launch(second_org, PATIENT, user="pr-nurse")
    assert at_b.api("GET", "/month").json()["organization"] == "org-b"
    made = at_b.api("POST", "/entries", json=manual_entry())
    assert made.status_code == 201, made.text
    b_entry = made.json()["entries"][0]["id"]
    started = at_b.api("POST", "/timers", json={"program": "ccm", "activity": "record-review"})
    assert started.status_code == 201, started.text
    b_timer = started.json()["timer"]["id"]
    today = dt.datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    consent = at_b.api("POST", "/consents", json={"program": "ccm", "method": "verbal", "obtained_on": today,
                                                  "explained_availability": True, "explained_cost_sharing": True,
                                                  "explained_right_to_stop": True, "explained_one_practitioner": True})
    assert consent.status_code == 201, consent.text
    b_consent = consent.json()["consent"]["id"]

    at_a = launch(secure_stack, PATIENT, user="pr-nurse")
    month = at_a.api("GET", "/month", params={"organization": "org-b"}).json()
    assert month["organization"] == secure_stack.organization.id and month["patient"] == PATIENT
    assert b_entry not in {e["id"] for e in month["entries"] + month["history"]}
    assert month["running_timer"] is None, "B's running timer must not show in A"

    attempts = {
        f"/entries/{b_entry}/amend": {**manual_entry(), "reason": "cross-org"},
        f"/entries/{b_entry}/void": {"reason": "cross-org"},
        f"/timers/{b_timer}/stop": {"minutes": 1},
        f"/timers/{b_timer}/discard": {},
        f"/consents/{b_consent}/withdraw": {"on": today},
    }
    for path, body in attempts.items():
        refused = at_a.api("POST", path, json=body)
        assert refused.status_code == 404, (path, refused.status_code, refused.text)
        assert refused.json()["error"]["title"] == "Not found", refused.text

    # B's records are untouched.
    after = at_b.api("GET", "/month").json()
    entry = next(e for e in after["entries"] if e["id"] == b_entry)
    assert entry["minutes"] == 5 and entry["effective"]
    assert after["running_timer"]["id"] == b_timer
    with database(secure_stack) as db:
        withdrawals = db.scalars(select(ConsentRow.id).where(ConsentRow.withdraws_id == b_consent)).all()
    assert withdrawals == []
    at_b.api("POST", f"/timers/{b_timer}/discard")


def test_a_page_of_one_organization_cannot_be_framed_by_anothers_ehr(secure_stack: Stack, second_org: Stack) -> None:
    at_a = launch(secure_stack, PATIENT, user="pr-nurse")
    page = httpx.get(f"{secure_stack.app_url}/patient", headers=at_a.bearer, timeout=20)
    assert page.status_code == 200, page.text
    csp = page.headers["content-security-policy"]
    assert f"frame-ancestors {secure_stack.sandbox_url}" in csp
    assert second_org.sandbox_url not in csp
