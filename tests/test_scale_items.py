"""PHQ-9 and GAD-7 given item by item: scored by the app, written to the EHR in the same request, a safety alert
for PHQ-9 item 9, and a total alone still accepted. Over real HTTP against the sandbox EHR (open profile), on both
databases; the EHR's copy is read back over FHIR with the month-end job's Backend Services token.
"""

from __future__ import annotations

import re
import time

import httpx

from smart_app.billing.fhir_resources import business_identifier
from tests.billing.test_writeback_e2e import backend_read, count
from tests.stack import Stack, biller_headers, new_browser
from tests.test_capture_api import api, earlier_today, launch
from tests.test_rating_scales import PATIENT, page, today

PHQ9 = ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8")
GAD7 = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
ANSWERS = {0: "LA6568-5", 1: "LA6569-3", 2: "LA6570-1", 3: "LA6571-9"}


def answers(codes: tuple[str, ...], scores: list[int]) -> dict[str, int]:
    return dict(zip(codes, scores, strict=True))


def record(stack: Stack, headers: dict, body: dict) -> httpx.Response:
    return api(stack, "POST", "/scales", headers, json={"date": today(stack).isoformat(), **body})


def scale_identifier(stack: Stack, scale_id: str, kind: str = "scale") -> dict:
    return business_identifier(kind, stack.organization.id, scale_id)


def test_a_phq9_given_item_by_item_is_scored_and_in_the_ehr_before_the_answer(stack: Stack) -> None:
    nurse, _ = launch(stack, PATIENT, user="pr-nurse")
    before = page(stack, nurse)
    assert "Give the PHQ-9" in before and "Give the GAD-7" in before
    assert "Over the last 2 weeks, how often have you been bothered by" in before
    assert before.count('data-item="44260-8"') == 4, "item 9 offers the four answers"

    answered = record(stack, nurse, {"scale": "PHQ-9", "items": answers(PHQ9, [1, 2, 1, 0, 1, 0, 1, 0, 0])})
    assert answered.status_code == 201, answered.text
    body = answered.json()
    scale = body["scale"]
    assert (scale["score"], scale["severity"], scale["loinc"]) == (6, "Mild", "44261-6")
    assert scale["items"] == answers(PHQ9, [1, 2, 1, 0, 1, 0, 1, 0, 0])
    assert body["alert"] is None
    ehr = body["ehr"]
    assert (ehr["status"], ehr["resource_type"]) == ("sent", "Observation"), ehr
    assert f"Observation/{ehr['id']}" in body["message"] and "total 6 (Mild)" in body["message"]

    # The EHR already holds it: the total as the value, each item as a component with its LOINC answer.
    observation = backend_read(stack, f"Observation/{ehr['id']}")
    assert observation["code"]["coding"][0]["code"] == "44261-6"
    assert observation["valueInteger"] == 6
    assert observation["category"][0]["coding"][0]["code"] == "survey"
    assert [c["code"]["coding"][0]["code"] for c in observation["component"]] == list(PHQ9)
    assert [c["valueCodeableConcept"]["coding"][0]["code"] for c in observation["component"]] == [
        ANSWERS[s] for s in (1, 2, 1, 0, 1, 0, 1, 0, 0)]
    assert observation["identifier"] == [scale_identifier(stack, scale["id"])]

    # The page lists it in the trend, newest first, with its band and where it went.
    after = page(stack, nurse)
    assert re.search(rf"<td>{today(stack).isoformat()}</td>\s*<td>6</td>\s*<td>Mild", after)
    assert f"in the EHR as Observation/{ehr['id']}" in after
    assert re.search(r"<td>17</td>\s*<td>Moderately severe</td>\s*<td>EHR \(Observation/", after), \
        "last month's PHQ-9 from the EHR is in the trend too"
    trend = after[after.index("<caption>PHQ-9"):]
    assert trend.index(f"<td>{today(stack).isoformat()}</td>") < trend.index("<td>17</td>"), "newest first"


def test_a_gad7_is_scored_and_a_total_alone_is_still_accepted(stack: Stack) -> None:
    nurse, _ = launch(stack, PATIENT, user="pr-nurse")
    gad = record(stack, nurse, {"scale": "GAD-7", "items": answers(GAD7, [3, 3, 2, 2, 1, 1, 0])})
    assert gad.status_code == 201, gad.text
    assert (gad.json()["scale"]["score"], gad.json()["scale"]["severity"]) == (12, "Moderate")
    assert gad.json()["ehr"]["status"] == "sent"

    total = record(stack, nurse, {"scale": "PHQ-2", "score": 3})
    assert total.status_code == 201, total.text
    assert total.json()["scale"]["items"] is None and total.json()["ehr"] is None
    assert "written to the EHR with the month's claim" in total.json()["message"]
    assert "Record another scale's total score" in page(stack, nurse)


def test_a_missing_or_out_of_range_item_is_named(stack: Stack) -> None:
    nurse, _ = launch(stack, PATIENT, user="pr-nurse")
    full = answers(PHQ9, [1] * 9)
    missing = {code: score for code, score in full.items() if code != "44253-3"}
    cases = [
        ({"scale": "PHQ-9", "items": missing}, "Item 8 of the PHQ-9 (Moving or speaking so slowly"),
        ({"scale": "PHQ-9", "items": {**full, "44254-1": 4}}, "Item 4 of the PHQ-9 (Feeling tired"),
        ({"scale": "PHQ-9", "items": {**full, "12345-6": 1}}, "'12345-6' is not an item of the PHQ-9"),
        ({"scale": "PHQ-9", "items": full, "score": 10}, "add up to 9, not 10"),
        ({"scale": "AUDIT-C", "items": {"75626-2": 1}}, "no item-by-item form for the AUDIT-C"),
        ({"scale": "GAD-7", "items": answers(PHQ9, [0] * 9)}, "is not an item of the GAD-7"),
        # Sent with nothing at all (the accessibility test found "got None" here): say what to do.
        ({"scale": "PHQ-9"}, "neither its answers nor a total"),
        ({"scale": "PHQ-9", "items": {}}, "Item 1 of the PHQ-9"),
    ]
    for body, says in cases:
        answer = record(stack, nurse, body)
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()["error"]
        assert says in error["message"] and error["hint"], (body, error)


def test_item_9_above_zero_answers_with_a_safety_alert_and_the_ehr_has_it(stack: Stack) -> None:
    nurse, _ = launch(stack, PATIENT, user="pr-nurse")
    answered = record(stack, nurse, {"scale": "PHQ-9", "items": answers(PHQ9, [2, 2, 1, 1, 1, 1, 1, 1, 1])})
    assert answered.status_code == 201, answered.text
    body = answered.json()
    alert = body["alert"]
    assert (alert["item"], alert["answer"], alert["score"]) == (9, "Several days", 1)
    assert "Thoughts that you would be better off dead" in alert["question"]
    actions = " ".join(alert["actions"])
    assert "suicide-risk protocol" in actions and "assesses the patient today" in actions and "988" in actions
    assert body["message"].startswith("Safety alert: PHQ-9 item 9")
    assert body["ehr"]["status"] == "sent"
    observation = backend_read(stack, f"Observation/{body['ehr']['id']}")
    assert any("item 9 positive" in note["text"] for note in observation["note"])

    # The page shows the alert beside the form, with where the result went, after a reload too.
    html = page(stack, nurse)
    shown = re.search(r'<div class="safety-alert" role="alert">(.*?)</div>', html, re.DOTALL)
    assert shown and "Safety alert: PHQ-9 item 9" in shown.group(1) and "988" in shown.group(1)
    assert f"Observation/{body['ehr']['id']}" in shown.group(1)


def test_with_the_ehr_down_the_scale_waits_and_month_end_sends_it_once(stack: Stack) -> None:
    nurse, _ = launch(stack, PATIENT, user="pr-nurse")
    # Every FHIR write fails while the EHR is down; reads and sign-ins still work.
    httpx.post(f"{stack.sandbox_url}/_sandbox/faults",
               json={"match": "POST /fhir", "kind": "500", "count": 50}).raise_for_status()
    try:
        answered = record(stack, nurse, {"scale": "PHQ-9", "items": answers(PHQ9, [1, 1, 1, 1, 1, 1, 1, 1, 0])})
    finally:
        httpx.delete(f"{stack.sandbox_url}/_sandbox/faults").raise_for_status()
    assert answered.status_code == 201, answered.text
    ehr = answered.json()["ehr"]
    assert ehr["status"] == "pending" and ehr["id"] is None, ehr
    assert "Not in the EHR yet" in ehr["message"] and "next delivery pass" in ehr["message"]
    identifier = scale_identifier(stack, answered.json()["scale"]["id"])
    assert count(stack, "Observation", identifier) == 0
    assert "waiting to be sent to the EHR" in page(stack, nurse)

    # Month end: the biller approves BHI; the scale, already queued, is sent once however often delivery runs.
    day, at = earlier_today(400)
    logged = api(stack, "POST", "/entries", nurse, json={
        "program": "bhi", "activity": "patient-call", "date": day, "time": at, "minutes": 22})
    assert logged.status_code == 201, logged.text
    biller = biller_headers(stack)
    month = f"{today(stack):%Y-%m}"
    assert api(stack, "POST", "/billing/rollup", biller, json={"month": month}).status_code == 200
    with new_browser() as browser:
        billing = browser.get(f"{stack.app_url}/billing", params={"month": month}, headers=biller).text
    claim = re.search(r'data-api="/api/v1/claims/([^/"]+)/approve"', billing)
    assert claim, "the biller is offered the BHI claim"
    assert api(stack, "POST", f"/claims/{claim.group(1)}/approve", biller, json={"note": "ok"}).status_code == 200
    # The failed attempt waits out its backoff (a few seconds) before the outbox sends it again.
    for _ in range(60):
        assert api(stack, "POST", "/billing/deliver", biller).status_code == 200
        if count(stack, "Observation", identifier):
            break
        time.sleep(0.25)
    for _ in range(2):
        assert api(stack, "POST", "/billing/deliver", biller).status_code == 200
    assert count(stack, "Observation", identifier) == 1
