"""Two organizations on one EHR: the same issuer, two client registrations, each launched from its own URL.

Two clinics on one Epic instance (one FHIR base, two client registrations), or one EHR registered both as a public
and as a confidential client, were refused before migration 0010 (`organizations.issuer` was UNIQUE). Here one
sandbox EHR registers two clients; organization A's chart launches `/launch/sandbox`, organization B's
`/launch/clinic-b`. The same nurse records time on the same patient at both, and each organization's biller rolls up
its own month: the claims differ as the minutes do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from smart_app.billing.claims import month_claims
from smart_app.demo import sandbox_client, sandbox_org
from smart_app.launch.models import AppSession, BackendTokenRow
from smart_app.launch.organizations import Organization, with_overrides
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from smart_app.settings import load_settings
from smart_app.web.app import create_app
from tests.billing.test_writeback_e2e import MONTH
from tests.databases import BACKENDS, engine_for, fresh_database, one_transaction
from tests.live_server import reserve_socket, serve_on, url_of
from tests.stack import TEST_SECRET, Stack, bearer, biller_headers, follow_launch, new_browser, open_chart
from tests.test_capture_api import api, earlier_today

PATIENT = "ccm-two-chronic"


@contextlib.contextmanager
def shared_ehr(database_url: str, data_dir) -> Iterator[tuple[Stack, Stack]]:  # noqa: ANN001
    """The app with two organizations on one sandbox EHR (different client ids): a Stack for each."""
    app_sock, sandbox_sock = reserve_socket(), reserve_socket()
    app_url, sandbox_url = url_of(app_sock), url_of(sandbox_sock)
    settings = load_settings(env={}, base_url=app_url, database_url=database_url, data_dir=data_dir,
                             secret_key=TEST_SECRET)
    first = sandbox_org(sandbox_url)
    second: Organization = with_overrides(first, id="clinic-b", name="Second Clinic on the same EHR",
                                          client_id="clinic-b-app")
    assert first.issuer == second.issuer
    with engine_for(database_url) as engine:
        clients = [sandbox_client(engine, settings, org) for org in (first, second)]
        sandbox = create_sandbox(SandboxConfig(base_url=sandbox_url, fixtures_dir=data_path("fixtures"),
                                               clients=clients, app_launch_url=f"{app_url}/launch/{first.id}"))
        with serve_on(sandbox_sock, sandbox), serve_on(app_sock, create_app(settings, [first, second], engine)):
            yield (Stack(app_url=app_url, sandbox_url=sandbox_url, settings=settings, organization=first),
                   Stack(app_url=app_url, sandbox_url=sandbox_url, settings=settings, organization=second))


@pytest.fixture(scope="module", params=BACKENDS)
def organizations(request: pytest.FixtureRequest, tmp_path_factory, pg_template) -> Iterator[tuple[Stack, Stack]]:
    tmp = tmp_path_factory.mktemp(f"shared-issuer-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url, shared_ehr(url, tmp) as stacks:
        yield stacks


def ehr_launch(stack: Stack, launch_path: str, patient_id: str = PATIENT, user: str = "pr-nurse") -> httpx.Response:
    """The EHR opens `launch_path` of the app for the patient, as its launch URL registered there."""
    made = httpx.post(f"{stack.sandbox_url}/_sandbox/launch", json={"patient": patient_id, "user": user})
    made.raise_for_status()
    with new_browser() as browser:
        page = browser.get(f"{stack.app_url}{launch_path}", params={"iss": made.json()["iss"],
                                                                     "launch": made.json()["launch"]})
        return follow_launch(browser, page, stack.app_url)


def record(stack: Stack, headers: dict, minutes: int, minutes_ago: int) -> None:
    day, time = earlier_today(minutes_ago)
    made = api(stack, "POST", "/entries", headers, json={
        "program": "ccm", "activity": "patient-call", "date": day, "time": time, "minutes": minutes})
    assert made.status_code == 201, made.text


def test_two_organizations_on_one_ehr_launch_and_roll_up_separately(organizations) -> None:
    first, second = organizations
    # A's chart launches A's own URL; B's launch URL names B.
    with new_browser() as browser:
        at_first = open_chart(browser, first, PATIENT, user="pr-nurse")
    assert at_first.status_code == 200, at_first.text
    at_second = ehr_launch(second, "/launch/clinic-b")
    assert at_second.status_code == 200, at_second.text
    nurse_a, nurse_b = bearer(at_first.text), bearer(at_second.text)
    assert api(first, "GET", "/month", nurse_a).json()["organization"] == "sandbox"
    assert api(second, "GET", "/month", nurse_b).json()["organization"] == "clinic-b"
    with one_transaction(first.settings.database_url) as db:
        sessions = {s.organization_id for s in db.scalars(select(AppSession))}
    assert {"sandbox", "clinic-b"} <= sessions

    record(first, nurse_a, 25, 900)
    record(second, nurse_b, 25, 800)
    record(second, nurse_b, 20, 700)
    for stack in (first, second):
        rolled = api(stack, "POST", "/billing/rollup", biller_headers(stack), json={"month": MONTH})
        assert rolled.status_code == 200 and rolled.json()["errors"] == [], rolled.text

    with one_transaction(first.settings.database_url) as db:
        claims = {org: {c.patient_id: [(line.code, line.units) for line in c.claim.lines]
                        for c in month_claims(db, org, MONTH)} for org in ("sandbox", "clinic-b")}
        backend = {row.organization_id for row in db.scalars(select(BackendTokenRow))}
    assert claims["sandbox"][PATIENT] == [("99490", 1)]
    assert claims["clinic-b"][PATIENT] == [("99490", 1), ("99439", 1)]
    # Each rollup read the EHR with its own organization's backend client (its own token).
    assert backend == {"sandbox", "clinic-b"}


def test_the_shared_ehrs_plain_launch_url_says_which_urls_to_register(organizations) -> None:
    first, _ = organizations
    page = ehr_launch(first, "/launch")
    assert page.status_code == 400
    assert "Several organizations use the EHR at" in page.text
    assert "/launch/sandbox" in page.text and "/launch/clinic-b" in page.text
    assert "launch/&lt;organization id&gt;" in page.text


def test_a_launch_url_refuses_another_ehr_and_an_unknown_organization(organizations) -> None:
    first, _ = organizations
    with new_browser() as browser:
        elsewhere = browser.get(f"{first.app_url}/launch/clinic-b",
                                params={"iss": "https://other-ehr.example.org/fhir", "launch": "x"})
        unknown = browser.get(f"{first.app_url}/launch/nowhere", params={"iss": first.fhir_base, "launch": "x"})
    assert elsewhere.status_code == 400
    assert "This launch URL is for Second Clinic on the same EHR" in elsewhere.text
    assert urlsplit(first.fhir_base).netloc in elsewhere.text and "other-ehr.example.org" in elsewhere.text
    assert unknown.status_code == 400 and "No organization &#39;nowhere&#39; is installed" in unknown.text
