"""Enrollment beyond consent in the chart, over real HTTP to the sandbox EHR: a program offered, declined or not a
candidate is recorded with its reason, shown per program with date and who recorded it, and no longer offered in the
consent form by default; consent recorded anyway makes the patient enrolled."""

from __future__ import annotations

import datetime as dt
import re

import httpx

from tests.stack import Stack, new_browser
from tests.test_capture_api import api, launch
from tests.test_consent_capture import ALL_ELEMENTS

PATIENT = "ccm-no-consent"


def day() -> str:
    # Yesterday: "today" on this machine may already be tomorrow in the organization's timezone, never the reverse
    # by more than a day.
    return (dt.date.today() - dt.timedelta(days=1)).isoformat()


def consent_section(stack: Stack, headers: dict) -> str:
    with new_browser() as browser:
        html = browser.get(f"{stack.app_url}/patient", headers=headers).text
    found = re.search(r'<section class="consent".*?</section>', html, re.S)
    assert found, "the page has a consent section"
    return re.sub(r"\s+", " ", found.group(0))


def options(section: str, details_class: str) -> list[str]:
    form = re.search(rf'<details class="{details_class}".*?</details>', section)
    if form is None:
        return []
    return re.findall(r'<option value="([a-z]+)">[A-Z]+</option>', form.group(0).split("</select>")[0])


REFUSED = [
    ({"program": "ccm", "status": "declined", "date": "2999-01-01", "reason": "cost"}, "is in the future"),
    ({"program": "ccm", "status": "declined", "date": "DAY"}, "Say why the patient declined (CCM)"),
    ({"program": "ccm", "status": "not-candidate", "date": "DAY", "reason": " "}, "is not a candidate"),
    ({"program": "tcm", "status": "declined", "date": "DAY", "reason": "cost"}, "is not a time-based program"),
    ({"program": "abc", "status": "offered", "date": "DAY"}, "Unknown program 'abc'"),
    ({"program": "ccm", "status": "enrolled", "date": "DAY"}, "status: Input should be"),
    ({"program": "ccm", "status": "declined", "date": "DAY", "reason": "cost\u0000"}, "NUL character"),
]


def test_what_cannot_be_recorded_is_refused_with_what_to_fix(stack: Stack) -> None:
    headers, _ = launch(stack, PATIENT, user="pr-care-manager")
    for body, said in REFUSED:
        sent = api(stack, "POST", "/enrollment", headers,
                   json={k: day() if v == "DAY" else v for k, v in body.items()})
        assert sent.status_code == 422, (body, sent.text)
        error = sent.json()["error"]
        assert said in error["message"] and error["hint"], (body, error)
    assert "not yet offered" in consent_section(stack, headers), "nothing was recorded"
    described = httpx.get(f"{stack.app_url}/api/v1/openapi.json").json()["components"]["schemas"]
    assert set(described["EnrollmentCreate"]["properties"]) == {"program", "status", "date", "reason"}


def test_a_person_without_a_clinical_role_cannot_record_a_decline(stack: Stack) -> None:
    headers, _ = launch(stack, PATIENT, user="pr-biller")
    refused = api(stack, "POST", "/enrollment", headers,
                  json={"program": "ccm", "status": "declined", "date": day(), "reason": "cost"})
    assert refused.status_code == 403


def test_a_decline_is_shown_and_the_program_is_offered_only_behind_record_consent_anyway(stack: Stack) -> None:
    headers, _ = launch(stack, PATIENT, user="pr-care-manager")
    before = consent_section(stack, headers)
    assert "<strong>CCM</strong>: <span class=\"enrollment-status\">not yet offered</span>" in before
    assert "ccm" in options(before, "capture-consent")
    assert 'data-api="/api/v1/enrollment"' in before

    made = api(stack, "POST", "/enrollment", headers,
               json={"program": "ccm", "status": "declined", "date": day(), "reason": "cost sharing"})
    assert made.status_code == 201, made.text
    assert made.json()["enrollment"]["recorded_by"] == "Practitioner/pr-care-manager"
    assert "declined CCM" in made.json()["message"]

    after = consent_section(stack, headers)
    assert (f'<strong>CCM</strong>: <span class="enrollment-status">declined</span> on {day()}, recorded by '
            "Practitioner/pr-care-manager; reason: cost sharing") in after
    assert "ccm" not in options(after, "capture-consent")
    assert options(after, "consent-anyway") == ["ccm"]
    assert "Record consent anyway (CCM: declined or not a candidate)" in after
    # The program's card says so too, instead of only asking for the consent.
    with new_browser() as browser:
        page = re.sub(r"\s+", " ", browser.get(f"{stack.app_url}/patient", headers=headers).text)
    assert (f'<p class="enrollment-note">The patient declined on {day()}: cost sharing. Consent can still be '
            "recorded in the consent section if the patient changes their mind.</p>") in page

    # The patient changed their mind: consent recorded anyway makes them enrolled.
    consented = api(stack, "POST", "/consents", headers,
                    json={"program": "ccm", "method": "verbal", "obtained_on": day(), **ALL_ELEMENTS})
    assert consented.status_code == 201, consented.text
    enrolled = consent_section(stack, headers)
    assert f'<strong>CCM</strong>: <span class="enrollment-status">enrolled</span> on {day()}' in enrolled
    assert 'class="consent-anyway"' not in enrolled

    # While the consent holds, a decline is refused: the withdrawal comes first.
    refused = api(stack, "POST", "/enrollment", headers,
                  json={"program": "ccm", "status": "declined", "date": day(), "reason": "changed mind"})
    assert refused.status_code == 409 and "record the withdrawal" in refused.json()["error"]["hint"]


def test_the_consent_form_offers_programs_neither_declined_nor_ruled_out() -> None:
    from smart_app.ledger.enrollment import EnrollmentRecord
    from smart_app.statuses import EnrollmentKind
    from smart_app.web.consent_list import enrollment_on_file, listed_consents, programs_to_offer

    rejected = {"resourceType": "Consent", "id": "r", "status": "rejected", "dateTime": "2026-10-01",
                "category": [{"coding": [{"system": "http://example.org/fhir/CodeSystem/care-program",
                                          "code": "pcm"}]}]}
    listed = listed_consents([rejected], [])
    hospice = EnrollmentRecord("e1", "o", "p", "bhi", EnrollmentKind.NOT_CANDIDATE, dt.date(2026, 11, 2), "hospice",
                               "Practitioner/pr-nurse", dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    statuses = enrollment_on_file(["ccm", "pcm", "bhi"], listed, [], [hospice])
    assert [(s.program, s.status.value, s.source) for s in statuses] == [
        ("ccm", "none", ""), ("pcm", "declined", "EHR"), ("bhi", "not-candidate", "app")]
    assert programs_to_offer(["ccm", "pcm", "bhi"], statuses) == ["ccm"]
