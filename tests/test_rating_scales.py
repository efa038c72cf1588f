"""A PHQ-9 given by phone and never charted: recorded in the app, it makes BHI billable and reaches the EHR.

Patient `bhi-phq9-by-phone` has depression, a BHI consent and a care plan, but only last month's PHQ-9 in the
chart. Over real HTTP against the sandbox EHR, on both databases.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import httpx

from smart_app.billing.fhir_resources import business_identifier
from tests.stack import Stack, biller_headers, new_browser
from tests.test_capture_api import api, earlier_today, launch

PATIENT = "bhi-phq9-by-phone"


def today(stack: Stack) -> dt.date:
    return dt.datetime.now(ZoneInfo(stack.organization.timezone)).date()


def page(stack: Stack, headers: dict) -> str:
    with new_browser() as browser:
        answer = browser.get(f"{stack.app_url}/patient", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.text


def bhi_card(html: str) -> str:
    match = re.search(r'<article class="program status-[a-z-]+" aria-labelledby="program-bhi">.*?</article>', html,
                      re.DOTALL)
    assert match, "the page shows the BHI program"
    return match.group(0)


def test_a_scale_recorded_in_the_app_makes_bhi_billable_and_is_written_back(stack: Stack) -> None:
    nurse, _ = launch(stack, PATIENT, user="pr-nurse")
    date, time = earlier_today(400)
    logged = api(stack, "POST", "/entries", nurse, json={
        "program": "bhi", "activity": "patient-call", "date": date, "time": time, "minutes": 22})
    assert logged.status_code == 201, logged.text
    before = page(stack, nurse)
    assert "Billable:" not in bhi_card(before)
    assert "no PHQ-9 or GAD-7" in before, "the page says what is missing"
    assert 'data-api="/api/v1/scales"' in before and "Give the PHQ-9" in before, "and offers to record it"

    recorded = api(stack, "POST", "/scales", nurse,
                   json={"scale": "PHQ-9", "score": 12, "date": today(stack).isoformat(), "note": "by phone"})
    assert recorded.status_code == 201, recorded.text
    scale = recorded.json()["scale"]
    assert (scale["scale"], scale["loinc"], scale["score"]) == ("PHQ-9", "44261-6", 12)
    assert "written to the EHR with the month's claim" in recorded.json()["message"]
    after = page(stack, nurse)
    assert re.search(r"<td>" + today(stack).isoformat() + r"</td>\s*<td>12</td>", after), "the trend lists it"
    assert re.search(r"Billable: <strong>99484</strong>", bhi_card(after))

    # Month end: the biller's approval writes the score to the EHR as an Observation, once.
    biller = biller_headers(stack)
    month = f"{today(stack):%Y-%m}"
    assert api(stack, "POST", "/billing/rollup", biller, json={"month": month}).status_code == 200
    with new_browser() as browser:
        billing = browser.get(f"{stack.app_url}/billing", params={"month": month}, headers=biller).text
    claim = re.search(r'data-api="/api/v1/claims/([^/"]+)/approve"', billing)
    assert claim, "the biller is offered the BHI claim"
    approved = api(stack, "POST", f"/claims/{claim.group(1)}/approve", biller, json={"note": "ok"})
    assert approved.status_code == 200, approved.text
    ident = business_identifier("scale", stack.organization.id, scale["id"])
    found = httpx.get(f"{stack.sandbox_url}/_sandbox/resources/Observation",
                      params={"identifier": f"{ident['system']}|{ident['value']}"}).json()
    assert found["total"] == 1


def test_a_bad_score_date_or_scale_is_refused_with_what_to_do(stack: Stack) -> None:
    nurse, _ = launch(stack, PATIENT, user="pr-nurse")
    day = today(stack)
    cases = [
        ({"scale": "PHQ-9", "score": 28, "date": day.isoformat()}, "whole number from 0 to 27"),
        ({"scale": "GAD-7", "score": 22, "date": day.isoformat()}, "from 0 to 21"),
        ({"scale": "Beck", "score": 3, "date": day.isoformat()}, "not a rating scale the app can record"),
        ({"scale": "PHQ-9", "score": 5, "date": (day + dt.timedelta(days=1)).isoformat()}, "in the future"),
        ({"scale": "PHQ-9", "score": -1, "date": day.isoformat()}, "score"),
        ({"scale": "PHQ-9", "date": day.isoformat()}, "score"),
    ]
    for body, says in cases:
        answer = api(stack, "POST", "/scales", nurse, json=body)
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()["error"]
        assert says in error["message"] and error["hint"], (body, error)
    assert "Beck" not in page(stack, nurse), "nothing was recorded"
