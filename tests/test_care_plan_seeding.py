"""The care-plan editor seeded from what the sandbox EHR has (over real HTTP, both databases): medication orders,
allergies, the care team as who is responsible, a specialist seen this year; each seeded line says where it came
from. Minutes spent on the plan are logged as care-plan time and show in the program's progress; the evidence
offer for a missing care plan points to the editor."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

from tests.stack import Stack, new_browser
from tests.test_capture_api import TZ, api, earlier_today, launch
from tests.test_care_plan_page import fields, plan_page
from tests.test_patient_page import card

PATIENT = "ccm-two-chronic"
CCM = "Chronic care management (non-complex)"


def patient_page(stack: Stack, headers: dict) -> str:
    with new_browser() as browser:
        answer = browser.get(f"{stack.app_url}/patient", headers=headers)
    assert answer.status_code == 200, answer.text
    return html_lib.unescape(answer.text)


def test_the_draft_is_seeded_from_the_charts_medications_allergies_team_and_visits(stack: Stack) -> None:
    manager, _ = launch(stack, PATIENT, user="pr-care-manager")
    html = plan_page(stack, manager, "?template=diabetes")
    draft = fields(html)
    assert "Metformin 500 mg tablet: 1 tablet by mouth twice daily with meals" in draft["medication_management"]
    assert "Lisinopril 10 mg tablet: 1 tablet by mouth once daily" in draft["medication_management"]
    assert draft["allergies"] == "Penicillin (Hives; high criticality)"
    assert "care manager: Maren Lindqvist, RN" in draft["interventions"]
    # The organization file names the billing practitioner (launch/sandbox.toml), whom the care team lists.
    assert "billing practitioner: Adaeze Okafor, MD" in draft["interventions"]
    assert "Priya Raman, MD (ophthalmology)" in draft["coordination"]
    assert "Susquehanna Eye Associates" in draft["coordination"]
    # Where each line came from, dated as the EHR dates it (the sandbox shifts the fixtures' dates to this month).
    sources = re.findall(r'<ul id="cp-(\w+)-sources"(.*?)</ul>', html, re.S)
    by_element = {name: body for name, body in sources}
    assert re.search(r"Metformin 500 mg tablet.*?\(from the EHR: MedicationRequest, \d{4}-\d{2}-\d{2}\)",
                     by_element["medication_management"], re.S)
    assert re.search(r"Penicillin.*?\(from the EHR: AllergyIntolerance, \d{4}-\d{2}-\d{2}\)", by_element["allergies"],
                     re.S)
    assert "(from the EHR: CareTeam)" in by_element["interventions"]
    assert re.search(r"\(from the EHR: Encounter, \d{4}-\d{2}-\d{2}\)", by_element["coordination"])
    assert "could not be read" not in html

    saved = api(stack, "POST", "/care-plans", manager, json=draft)
    assert saved.status_code == 201, saved.text
    reopened = plan_page(stack, manager)
    assert fields(reopened)["allergies"] == draft["allergies"]
    assert "from the EHR: MedicationRequest" not in reopened  # a saved version is shown as saved, not re-seeded


def test_minutes_spent_on_the_plan_are_logged_as_care_plan_time_and_show_on_the_patient_page(stack: Stack) -> None:
    manager, _ = launch(stack, PATIENT, user="pr-care-manager")
    html = plan_page(stack, manager)
    # CCM and APCM both apply to this patient: the person chooses, CCM (the plan's program) first.
    assert 'name="minutes"' in html and re.search(r'<select name="program">\s*<option value="ccm">', html)
    before = api(stack, "GET", "/month", manager).json()["minutes_by_program"].get("ccm", 0)

    saved = api(stack, "POST", "/care-plans", manager, json={**fields(html), "minutes": 20, "program": "ccm"})
    assert saved.status_code == 201, saved.text
    assert "Recorded" in saved.json()["message"]
    month = api(stack, "GET", "/month", manager).json()
    assert month["minutes_by_program"]["ccm"] == before + 20
    logged = [e for e in month["entries"] if e["activity"] == "care-plan-update"]
    assert logged and logged[-1]["minutes"] == 20 and logged[-1]["performer"] == "Practitioner/pr-care-manager"
    assert f"{before + 20} minutes logged" in card(patient_page(stack, manager), CCM)

    # The same minutes again would overlap the person's own time: refused, and no draft is saved without them.
    versions = len(re.findall(r"<tr><td>\d+</td>", plan_page(stack, manager)))
    again = api(stack, "POST", "/care-plans", manager, json={**fields(html), "minutes": 20, "program": "ccm"})
    assert again.status_code in (409, 422), again.text
    assert "cannot be counted twice" in again.json()["error"]["message"]
    assert len(re.findall(r"<tr><td>\d+</td>", plan_page(stack, manager))) == versions
    assert api(stack, "GET", "/month", manager).json()["minutes_by_program"]["ccm"] == before + 20

    no_minutes = api(stack, "POST", "/care-plans", manager, json={**fields(html), "started_at": "09:00"})
    assert no_minutes.status_code == 422 and "no minutes" in no_minutes.json()["error"]["message"]
    assert len(re.findall(r"<tr><td>\d+</td>", plan_page(stack, manager))) == versions

    day, time = earlier_today(900)
    if day == dt.datetime.now(TZ).date().isoformat():  # a start time is today's; near midnight there is no room
        started = api(stack, "POST", "/care-plans", manager,
                      json={**fields(html), "minutes": 10, "started_at": time, "program": "ccm"})
        assert started.status_code == 201, started.text
        entry = [e for e in api(stack, "GET", "/month", manager).json()["entries"]
                 if e["activity"] == "care-plan-update" and e["minutes"] == 10]
        assert entry and dt.datetime.fromisoformat(entry[0]["start"]).astimezone(TZ).strftime("%H:%M") == time


def test_the_missing_care_plan_offer_points_to_the_editor(stack: Stack) -> None:
    from tests.test_consent_capture import ALL_ELEMENTS

    patient = "ccm-no-consent"
    manager, _ = launch(stack, patient, user="pr-care-manager")
    date, _ = earlier_today(0)
    assert api(stack, "POST", "/consents", manager, json={
        "program": "ccm", "method": "verbal", "obtained_on": date, **ALL_ELEMENTS}).status_code == 201
    ccm = card(patient_page(stack, manager), CCM)
    assert re.search(r'<a class="evidence-link" href="/patient/care-plan">Write the care plan in the app</a>', ccm)
    # The date form stays, for a plan kept elsewhere.
    assert "For a plan kept elsewhere" in ccm and "Record the care plan date" in ccm


def test_an_ehr_that_refuses_allergies_gives_a_note_not_a_failure(tmp_path_factory, pg_template) -> None:
    """An Epic-like EHR (no batch: the reads go out concurrently) that does not grant AllergyIntolerance: the search
    is refused (403), the editor says so and still seeds the rest; it never says the patient has no allergies."""
    from smart_app.launch.scopes import backend_scopes, launch_scopes
    from tests.databases import fresh_database
    from tests.stack import running_stack

    granted = " ".join(s for s in (launch_scopes() + " " + backend_scopes()).split()
                       if "AllergyIntolerance" not in s)
    tmp = tmp_path_factory.mktemp("no-allergies")
    with fresh_database("sqlite", tmp, pg_template) as url, \
            running_stack(url, tmp, profile="epic-like", client_scope=granted) as stack:
        manager, _ = launch(stack, PATIENT, user="pr-care-manager")
        html = plan_page(stack, manager, "?template=diabetes")
        draft = fields(html)
        assert re.search(r'<p class="note care-plan-unread">Allergies \(AllergyIntolerance\) could not be read, so '
                         r"the draft has nothing from it: The EHR refused access[^<]*AllergyIntolerance\.<", html), html
        assert draft["allergies"] == "" and "None recorded" not in html
        assert "Metformin 500 mg tablet" in draft["medication_management"]
        assert api(stack, "POST", "/care-plans", manager, json=draft).status_code == 201
