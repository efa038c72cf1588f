"""The consent section lists the patient's consents from the EHR and the app (program, date, method, who
recorded them) and offers a new consent only for programs without an active one."""

from __future__ import annotations

import datetime as dt
import re

from smart_app.ledger.consents import ConsentRecord
from smart_app.statuses import ConsentKind, WritebackStatus
from smart_app.web.consent_list import listed_consents, programs_without_consent
from tests.stack import Stack, new_browser, open_chart
from tests.test_capture_api import api, launch

EHR_CONSENT = {
    "resourceType": "Consent", "id": "c1", "status": "active", "dateTime": "2026-04-09T10:00:00-04:00",
    "category": [{"coding": [{"system": "http://example.org/fhir/CodeSystem/care-program", "code": "ccm"}]}],
    "organization": [{"display": "Maple Street Primary Care"}],
    "policyRule": {"text": "Verbal consent to Chronic Care Management documented."}}


def _record(program: str, withdrawn: bool = False) -> ConsentRecord:
    return ConsentRecord(
        id="r1", organization_id="o", patient_id="p", program=program, kind=ConsentKind.CONSENT, method="written",
        explained_availability=True, explained_cost_sharing=True, explained_right_to_stop=True,
        explained_one_practitioner=True, obtained_on=dt.date(2026, 11, 2), obtained_by="Practitioner/pr-nurse",
        note="", recorded_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC), withdraws_id=None,
        writeback_status=WritebackStatus.WRITTEN, writeback_detail="", fhir_id=None,
        withdrawn_by="w1" if withdrawn else None)


def test_consents_from_the_ehr_and_the_app_are_listed_newest_first() -> None:
    app_written = {**EHR_CONSENT, "id": "mine", "identifier": [{"system": "urn:smart-app:consent", "value": "r1"}]}
    listed = listed_consents([EHR_CONSENT, app_written], [_record("bhi")])
    assert [(c.program, c.source, c.method, c.on) for c in listed] == [
        ("bhi", "app", "written", dt.date(2026, 11, 2)), ("ccm", "EHR", "verbal", dt.date(2026, 4, 9))]
    assert listed[1].recorded_by == "in the EHR at Maple Street Primary Care"
    assert listed[0].recorded_by == "Practitioner/pr-nurse"
    assert programs_without_consent(["ccm", "bhi", "pcm"], listed) == ["pcm"]


def test_a_withdrawn_or_inactive_consent_is_listed_but_does_not_hold() -> None:
    inactive = {**EHR_CONSENT, "status": "inactive"}
    listed = listed_consents([inactive], [_record("bhi", withdrawn=True)])
    assert {(c.program, c.status) for c in listed} == {("ccm", "inactive"), ("bhi", "withdrawn")}
    assert programs_without_consent(["ccm", "bhi"], listed) == ["ccm", "bhi"]


def _consent_section(html: str) -> str:
    return re.sub(r"\s+", " ", re.search(r'<section class="consent".*?</section>', html, re.S).group(0))


def test_the_page_lists_the_ehr_consent_and_does_not_offer_it_again(stack: Stack) -> None:
    with new_browser() as browser:
        html = open_chart(browser, stack, "cocm-depression-anxiety", user="pr-care-manager").text
    section = _consent_section(html)
    # The sandbox moves the fixtures' dates to keep them recent: any date, as the EHR holds it.
    assert re.search(r"<strong>COCM</strong>: verbal consent on \d{4}-\d\d-\d\d, recorded in the EHR at Maple Street "
                     r"Primary Care", section), section
    form = re.search(r'<details class="capture-consent".*?</details>', section)
    offered = re.findall(r'<option value="([a-z]+)">[A-Z]+</option>', form.group(0).split("</select>")[0]) \
        if form else []
    assert "cocm" not in offered


def test_a_consent_recorded_in_the_app_is_listed_with_who_recorded_it(stack: Stack) -> None:
    headers, _ = launch(stack, "ccm-no-consent", user="pr-care-manager")
    today = dt.date.today().isoformat()
    made = api(stack, "POST", "/consents", headers, json={
        "program": "ccm", "method": "written", "obtained_on": today, "explained_availability": True,
        "explained_cost_sharing": True, "explained_right_to_stop": True, "explained_one_practitioner": True})
    assert made.status_code == 201, made.text
    with new_browser() as browser:
        html = open_chart(browser, stack, "ccm-no-consent", user="pr-care-manager").text
    section = _consent_section(html)
    assert f"<strong>CCM</strong>: written consent on {today}, recorded by Practitioner/pr-care-manager" in section
    assert 'class="capture-consent"' not in section or '<option value="ccm">CCM</option>' not in section
