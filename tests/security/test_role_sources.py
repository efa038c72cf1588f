"""Roles from what each EHR really exposes, the two big EHRs as the sandbox shapes them.

Epic-like: PractitionerRole coded with the instance's own code system (`urn:oid:...`), mapped by the
organization file; the biller has no provider record (a Practitioner with no PractitionerRole) and holds the
biller role by the file's seeded assignment. Oracle-like: no PractitionerRole at all, Practitioner.qualification
only (an LPN maps; a care manager, an RN, does not until an administrator grants the role); the biller signs in
as a Person.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from smart_app.launch.models import AppSession
from tests.databases import BACKENDS, PostgresTemplate, fresh_database
from tests.security.helpers import database, launch, manual_entry, smart_app_command
from tests.stack import Stack, running_stack, sign_in, top_level_browser


def _stack(profile: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           pg_template: PostgresTemplate) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"roles-{profile}-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url, running_stack(url, tmp, profile=profile) as stack:
        yield stack


@pytest.fixture(scope="module", params=BACKENDS)
def epic(request, tmp_path_factory, pg_template) -> Iterator[Stack]:
    yield from _stack("epic-like", request, tmp_path_factory, pg_template)


@pytest.fixture(scope="module", params=BACKENDS)
def oracle(request, tmp_path_factory, pg_template) -> Iterator[Stack]:
    yield from _stack("oracle-like", request, tmp_path_factory, pg_template)


def role_codes_of(stack: Stack, user: str) -> list[dict]:
    with database(stack) as db:
        session = db.scalars(select(AppSession).where(AppSession.fhir_user.like(f"%/{user}"))
                             .order_by(AppSession.created_at.desc())).first()
        return list(session.role_codes or [])


def test_epic_like_roles_come_from_the_instances_practitioner_role_codes(epic: Stack) -> None:
    manager = launch(epic, user="pr-care-manager")
    assert "Maren Lindqvist</strong> (care manager, clinician)" in manager.page
    assert manager.api("GET", "/month").json()["role"] == "care-manager"
    codes = role_codes_of(epic, "pr-care-manager")
    assert {"source": "practitioner-role", "system": "urn:oid:1.2.840.114350.1.13.9999.1.7.10.836982.1050",
            "code": "31", "display": "Care manager"} in codes
    assert manager.api("POST", "/entries", json=manual_entry()).status_code == 201

    # The biller has no provider record, so no PractitionerRole: the organization file's assignment decides.
    with top_level_browser() as browser:
        page = sign_in(browser, epic, "pr-biller")
    assert page.status_code == 200 and "Pat Kowalski</strong> (biller)" in page.text
    assert not [c for c in role_codes_of(epic, "pr-biller") if c["source"] == "practitioner-role"]


def test_oracle_like_roles_come_from_qualifications_and_grants(oracle: Stack) -> None:
    nurse = launch(oracle, user="pr-nurse")
    assert "Tomas Delgado</strong> (clinician)" in nurse.page
    assert nurse.api("GET", "/month").json()["role"] == "clinical-staff"
    assert {"source": "qualification", "system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": "LPN",
            "display": "Licensed Practical Nurse"} in role_codes_of(oracle, "pr-nurse")

    # An RN's qualification says nothing of care management: unmapped, the care manager reads but cannot record.
    manager = launch(oracle, user="pr-care-manager")
    assert "(no role in the app yet)" in manager.page
    assert "recording time needs the clinician or care manager role. Ask an administrator" in manager.page
    assert 'data-api="/api/v1/entries"' not in manager.page, "no capture form the person could not use"
    refused = manager.api("POST", "/entries", json=manual_entry())
    assert refused.status_code == 403 and "Ask an administrator" in refused.json()["error"]["hint"]

    admin = launch(oracle, user="pr-billing-md")
    for role in ("care-manager", "time:care-manager"):
        granted = admin.api("POST", "/admin/roles", json={"user": "Practitioner/pr-care-manager", "role": role})
        assert granted.status_code == 201, granted.text
    assert manager.api("GET", "/month").json()["role"] == "care-manager"
    assert manager.api("POST", "/entries", json=manual_entry()).status_code == 201

    # The biller signs in as a Person, which only an assignment can give a role.
    with top_level_browser() as browser:
        page = sign_in(browser, oracle, "Person/ps-biller")
    assert page.status_code == 200 and "Pat Kowalski</strong> (biller)" in page.text


def test_org_check_shows_how_each_practitioner_maps_and_who_does_not(oracle: Stack, monkeypatch, capsys) -> None:
    status, out = smart_app_command(oracle, monkeypatch, capsys, "org", "check", oracle.organization.id)
    assert "People the EHR lists, and their roles in the app" in out, out
    assert ("Tomas Delgado (Practitioner/pr-nurse): qualification http://terminology.hl7.org/CodeSystem/v2-0360|LPN "
            "(Licensed Practical Nurse) -> clinician; clinical-staff [mapped from the EHR]") in out
    assert "The EHR gives no PractitionerRole" in out
    unmapped = out.split("Not mapped (", 1)[1]
    # A social worker's qualification carries only text, a psychiatrist's "MD" is mapped by nobody here.
    assert "Colleen Brennan (Practitioner/pr-bh-care-manager)" in unmapped
    assert "Dr. Samir Haddad (Practitioner/pr-psych-consultant)" in unmapped
    assert "Tomas Delgado" not in unmapped and "Pat Kowalski" not in unmapped, "the biller is seeded"
