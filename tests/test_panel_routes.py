"""The panel's routes: authorized by the launch session, one organization only, HTML and CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.testclient import TestClient

from smart_app.access.roles import AppRole, Assignment
from smart_app.billing.panel import csv_header
from smart_app.crypto import TokenBox, hash_handle
from smart_app.db import transaction
from smart_app.errors import SmartAppError
from smart_app.launch.models import AppSession
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.entries import record_entry
from smart_app.ledger.months import Month
from smart_app.ledger.records import MonthStatusRow, PatientRow
from smart_app.ledger.values import EntryInput
from smart_app.rules.loader import default_rule_set
from smart_app.rules.rates import estimate_label
from smart_app.services import build_context
from smart_app.settings import Settings
from smart_app.web import panel_routes
from smart_app.web.app import app_error, http_error
from smart_app.web.authorization import protect
from smart_app.web.panel_routes import csv_filename, routes
from smart_app.web.patient_view import org_today
from tests.ledger.conftest import documented

TZ = "America/New_York"
NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
SECRET = "panel-test-secret"
# The signed-in lead is each clinic's biller (seeded, as an organization file does), so sees every patient.
LEAD = (Assignment("Practitioner/lead", frozenset({AppRole.BILLER}), None),)
# org-la names its Medicare locality (illustrative GPCIs, not a CMS locality); org-ny does not.
LA_RATES = {"locality": "Test locality", "work_gpci": 1.05, "pe_gpci": 1.2, "mp_gpci": 0.8}
ORGS = (Organization(id="org-ny", name="NY Clinic", issuer="https://ehr.example.org/fhir", client_id="app",
                     timezone=TZ, role_assignments=LEAD),
        Organization(id="org-la", name="LA Clinic", issuer="https://la.example.org/fhir", client_id="app",
                     timezone="America/Los_Angeles", extra={"medicare_rates": LA_RATES}, role_assignments=LEAD),
        Organization(id="org-bad", name="Typo Clinic", issuer="https://bad.example.org/fhir", client_id="app",
                     timezone=TZ, extra={"medicare_rates": {**LA_RATES, "pe_gpci": "1,2"}}, role_assignments=LEAD))
HANDLES = {"org-ny": "handle-ny", "org-la": "handle-la", "org-bad": "handle-bad", "expired": "handle-expired"}
ESTIMATE_LABEL = estimate_label(default_rule_set("medicare", 2026))
CSV_HEADER = csv_header(ESTIMATE_LABEL)


def bearer(org: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {HANDLES[org]}"}


def seed(sessions: sessionmaker[Session]) -> None:
    tokens = TokenBox(SECRET)
    now = datetime.now(UTC)
    with transaction(sessions) as db:
        save_organizations(db, list(ORGS))
    with transaction(sessions) as db:
        for key, handle in HANDLES.items():
            org = "org-ny" if key == "expired" else key
            ends = now - timedelta(minutes=1) if key == "expired" else now + timedelta(hours=1)
            db.add(AppSession(id_hash=hash_handle(handle), organization_id=org, fhir_base="https://ehr.example.org/fhir",
                              token_endpoint="https://ehr.example.org/token", patient_id="pat-1", encounter_id=None,
                              fhir_user="Practitioner/lead", scope="launch openid fhirUser",
                              access_token_enc=tokens.seal("access"), refresh_token_enc=None,
                              token_expires_at=now + timedelta(hours=1), need_patient_banner=True,
                              smart_style_url=None, capabilities={}, created_at=now, expires_at=ends,
                              refresh_count=0))
        patients = [("org-ny", "ny-1", "Nora Close", "Practitioner/cm-1", "Carla Manager", "=cmd|' /C calc'!A0"),
                    ("org-ny", "ny-2", "Ned Billable", "Practitioner/cm-2", "Bruno Manager", "MRN-2"),
                    ("org-la", "la-1", "Lara Elsewhere", "Practitioner/cm-9", "Other Manager", "MRN-9")]
        for org, patient, name, manager, manager_name, mrn in patients:
            db.add(PatientRow(organization_id=org, patient_id=patient, name=name, birth_date=None, mrn=mrn,
                              care_manager=manager, care_manager_name=manager_name, updated_at=NOW))
        db.add(MonthStatusRow(organization_id="org-ny", patient_id="ny-1", month="2026-11",
                              eligible_programs=["ccm", "bhi"], decision={}, evaluated_at=NOW))
    for org, patient in (("org-ny", "ny-1"), ("org-ny", "ny-2"), ("org-la", "la-1")):
        documented(sessions, patient, {"ccm", "bhi"}, org=org)
    for org, patient, minutes, program, n in (("org-ny", "ny-1", 15, "ccm", 1), ("org-ny", "ny-2", 25, "ccm", 2),
                                              ("org-la", "la-1", 19, "ccm", 3), ("org-ny", "ny-2", 5, "bhi", 4),
                                              ("org-la", "la-1", 2, "ccm", 5)):
        with transaction(sessions) as db:
            record_entry(db, EntryInput(organization_id=org, patient_id=patient, performer=f"Practitioner/n{n}",
                                        role="clinical-staff", program=program, activity="record-review",
                                        start=datetime(2026, 11, 20, 14, 0, tzinfo=UTC), minutes=minutes),
                         timezone=TZ, now=NOW)


@pytest.fixture
def client(database_url: str, engine: Engine, tmp_path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, base_url="http://127.0.0.1:8000",
                        secret_key=SECRET)
    app = Starlette(routes=protect(routes()), exception_handlers={SmartAppError: app_error, HTTPException: http_error})
    app.state.ctx = build_context(settings, engine)
    seed(app.state.ctx.sessions)
    try:
        with TestClient(app) as test_client:
            yield test_client
    finally:
        asyncio.run(app.state.ctx.http.aclose())


def test_panel_page_shows_only_the_sessions_organization(client: TestClient) -> None:
    page = client.get("/panel?month=2026-11", headers=bearer("org-ny"))
    assert page.status_code == 200
    assert "Nora Close" in page.text and "Ned Billable" in page.text
    assert "Lara Elsewhere" not in page.text and "Other Manager" not in page.text
    assert page.text.index("Nora Close") < page.text.index("Ned Billable")  # close before billable
    other = client.get("/panel?month=2026-11", headers=bearer("org-la"))
    assert "Lara Elsewhere" in other.text and "Nora Close" not in other.text


def test_panel_page_markup_is_accessible_and_labels_the_estimates(client: TestClient) -> None:
    text = client.get("/panel?month=2026-11", headers=bearer("org-ny")).text
    assert '<caption id="panel-caption">Enrolled patients, November 2026' in text
    assert text.count('<th scope="col"') == 10
    assert '<th scope="row">Nora Close</th>' in text
    assert '<label for="panel-program">' in text and 'id="panel-program" name="program"' in text
    assert '<label for="panel-care-manager">' in text and '<form class="panel-filters" method="get"' in text
    assert 'role="region" aria-labelledby="panel-caption" tabindex="0"' in text
    assert ESTIMATE_LABEL in text
    assert "$66.13" in text  # captured: 99490 for Ned
    assert 'href="/panel.csv?month=2026-11"' in text
    assert "eligibility as of Nov 20, 12:00" in text  # 17:00 UTC in New York
    assert "eligibility not yet checked" in text
    # Autoescaped: the MRN's markup-like text is shown, not run.
    assert "=cmd|&#39; /C calc&#39;!A0" in text


def test_an_organization_naming_its_locality_sees_locality_estimates(client: TestClient) -> None:
    text = client.get("/panel?month=2026-11", headers=bearer("org-la")).text
    assert ("Estimates: locality estimate for Test locality (GPCIs: work 1.05, practice expense 1.2, malpractice "
            "0.8), non-facility, conversion factor $33.4009; not a payment amount.") in text
    # 21 minutes: 99490 at the locality, [(1.00 x 1.05) + (0.91 x 1.2) + (0.07 x 0.8)] x 33.4009, not $66.13.
    assert "$73.42" in text and "$66.13" not in text
    csv_text = client.get("/panel.csv?month=2026-11", headers=bearer("org-la")).text
    assert "Captured (locality estimate for Test locality" in csv_text.splitlines()[0]


def test_a_mistyped_locality_is_an_error_that_names_the_setting(client: TestClient) -> None:
    page = client.get("/panel?month=2026-11", headers=bearer("org-bad"))
    assert page.status_code == 500
    assert "pe_gpci = &#39;1,2&#39; is not a GPCI" in page.text and "CMS&#39;s GPCI file" in page.text


def test_filters_come_from_the_query(client: TestClient) -> None:
    bhi = client.get("/panel?month=2026-11&program=bhi", headers=bearer("org-ny")).text
    assert '<option value="bhi" selected>' in bhi
    assert bhi.count('<th scope="row">') == 2  # Nora (eligible, no minutes) and Ned (5 minutes)
    assert 'href="/panel.csv?month=2026-11&amp;program=bhi"' in bhi
    carla = client.get("/panel?month=2026-11&care_manager=Practitioner/cm-1", headers=bearer("org-ny")).text
    assert "Nora Close" in carla and "Ned Billable" not in carla
    assert '<option value="Practitioner/cm-1" selected>Carla Manager</option>' in carla
    assert '<option value="Practitioner/cm-2">Bruno Manager</option>' in carla
    nobody = client.get("/panel?month=2026-11&care_manager=Practitioner/cm-9", headers=bearer("org-ny")).text
    assert "No enrolled patients this month match these filters." in nobody


def test_the_default_month_is_the_organizations_current_month(client: TestClient) -> None:
    text = client.get("/panel", headers=bearer("org-ny")).text
    assert Month.parse(f"{org_today(ORGS[0]):%Y-%m}").label in text


def test_without_a_live_session_the_panel_is_refused(client: TestClient) -> None:
    for headers in ({"Authorization": "Bearer made-up"}, bearer("expired")):
        page = client.get("/panel?month=2026-11", headers=headers)
        assert page.status_code == 401
        assert "Nora Close" not in page.text and "Relaunch the app" in page.text
    # With no session at all, the panel offers the person's own sign-in at the EHR, and returns after it.
    for path in ("/panel?month=2026-11", "/panel.csv?month=2026-11"):
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 303 and "Nora Close" not in page.text
        assert page.headers["location"] == "/signin?next=" + quote(path, safe="")


@pytest.mark.parametrize("path", ["/panel", "/panel.csv"])
def test_a_bad_month_or_program_is_a_400_that_says_what_to_write(client: TestClient, path: str) -> None:
    for month in ("2026-13", "Nov-2026", "2026-1"):
        page = client.get(path, params={"month": month}, headers=bearer("org-ny"))
        assert page.status_code == 400
        assert "YYYY-MM" in page.text and "text/html" in page.headers["content-type"]
    page = client.get(path, params={"month": "2026-11", "program": "nope"}, headers=bearer("org-ny"))
    assert page.status_code == 400 and "Unknown program" in page.text


def test_csv_download(client: TestClient) -> None:
    response = client.get("/panel.csv?month=2026-11", headers=bearer("org-ny"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="panel-org-ny-2026-11.csv"'
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert tuple(rows[0]) == CSV_HEADER
    body = [dict(zip(CSV_HEADER, r, strict=True)) for r in rows[1:]]
    assert {r["Patient ID"] for r in body} == {"ny-1", "ny-2"}
    assert next(r for r in body if r["Patient ID"] == "ny-1" and r["Program"] == "ccm")["MRN"].startswith("'=")
    filtered = client.get("/panel.csv?month=2026-11&program=bhi&care_manager=Practitioner/cm-2",
                          headers=bearer("org-ny"))
    assert [r[2] for r in csv.reader(io.StringIO(filtered.text, newline=""))][1:] == ["ny-2"]


def test_csv_filename_is_header_safe() -> None:
    assert csv_filename('org "x"/y', "2026-11") == "panel-org-x-y-2026-11.csv"


def test_the_page_shows_a_page_of_rows_and_links_to_the_next(client: TestClient, monkeypatch) -> None:
    monkeypatch.setattr(panel_routes, "PAGE_SIZE", 1)
    first = client.get("/panel?month=2026-11", headers=bearer("org-ny")).text
    assert first.count('<th scope="row">') == 1 and "Nora Close" in first
    assert "Page 1 of 4" in first and 'href="/panel?month=2026-11&amp;page=2" rel="next"' in first
    second = client.get("/panel?month=2026-11&page=2", headers=bearer("org-ny")).text
    assert "Ned Billable" in second and 'rel="prev"' in second and "Nora Close" not in second
    beyond = client.get("/panel?month=2026-11&page=99", headers=bearer("org-ny"))
    assert beyond.status_code == 200 and "Page 4 of 4" in beyond.text
    assert client.get("/panel?month=2026-11&page=0", headers=bearer("org-ny")).status_code == 400
    assert client.get("/panel?month=2026-11&page=x", headers=bearer("org-ny")).status_code == 400


def test_the_panel_shows_enrollment_per_row_and_filters_by_it(client: TestClient) -> None:
    text = client.get("/panel?month=2026-11", headers=bearer("org-ny")).text
    assert '<th scope="col">Enrollment</th>' in text and '<label for="panel-enrollment">' in text
    # Both patients consented to CCM and BHI in the EHR (the facts last read): four rows.
    assert text.count('<td class="panel-enrollment enrollment-enrolled">enrolled</td>') == 4
    assert '<h2 id="panel-outreach-title">Could be offered a program</h2>' in text
    none = client.get("/panel?month=2026-11&enrollment=declined", headers=bearer("org-ny")).text
    assert '<th scope="row">' not in none and "No enrolled patients this month match these filters." in none
    enrolled = client.get("/panel.csv?month=2026-11&enrollment=enrolled", headers=bearer("org-ny")).text
    assert [r[-1] for r in csv.reader(io.StringIO(enrolled, newline=""))][1:] == ["enrolled"] * 4
    bad = client.get("/panel?month=2026-11&enrollment=maybe", headers=bearer("org-ny"))
    assert bad.status_code == 400 and "Unknown enrollment status" in bad.text and "not-candidate" in bad.text
