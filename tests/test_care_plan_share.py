"""The signed care plan shared, over real HTTP to the sandbox EHR: the patient copy PDF; the CarePlan and its Goals
(open profile) or the PDF as a DocumentReference (epic-like) written once at signing, however often it is signed
or delivered again; a newer version revokes (supersedes) the old one there."""

from __future__ import annotations

import asyncio
import base64
import html as html_lib
import io
import re
import time
from collections.abc import Iterator

import httpx
import pypdf
import pytest

from smart_app.billing.care_plan_resources import document_identifier, goal_identifier, plan_identifier
from smart_app.launch.backend import backend_token
from smart_app.services import build_context
from tests.databases import fresh_database
from tests.stack import Stack, biller_headers, new_browser, running_stack
from tests.test_capture_api import api, launch
from tests.test_care_plan_page import fields, plan_page


def count(stack: Stack, kind: str, identifier: dict) -> list[str]:
    """The ids of the EHR's resources of `kind` carrying `identifier`."""
    token = f"{identifier['system']}|{identifier['value']}"
    answer = httpx.get(f"{stack.sandbox_url}/_sandbox/resources/{kind}", params={"identifier": token})
    answer.raise_for_status()
    return answer.json()["ids"]


def read(stack: Stack, reference: str) -> dict:
    return read_all(stack, [reference])[0]


def read_all(stack: Stack, references: list[str]) -> list[dict]:
    """Read resources from the EHR as the app's backend does (one Backend Services token for them all)."""
    async def go() -> list[dict]:
        app = build_context(stack.settings)
        try:
            token = await backend_token(app.launch, stack.organization)
            found = []
            for reference in references:
                answer = await app.http.get(f"{stack.fhir_base}/{reference}",
                                            headers={"Authorization": f"Bearer {token}"})
                answer.raise_for_status()
                found.append(answer.json())
            return found
        finally:
            await app.http.aclose()
            app.engine.dispose()
    return asyncio.run(go())


def save_draft(stack: Stack, manager: dict, **changes: object) -> str:
    """The care manager saves the editor's draft (with `changes`); its id."""
    draft = {**fields(plan_page(stack, manager)), **changes}
    saved = api(stack, "POST", "/care-plans", manager, json=draft)
    assert saved.status_code == 201, saved.text
    return saved.json()["care_plan"]["id"]


def sign(stack: Stack, doctor: dict, version_id: str) -> dict:
    signed = api(stack, "POST", f"/care-plans/{version_id}/sign", doctor, json={})
    assert signed.status_code == 201, signed.text
    return signed.json()


def draft_and_sign(stack: Stack, patient: str, manager: dict, doctor: dict, **changes: object) -> dict:
    """The care manager saves the editor's draft (with `changes`), the billing practitioner signs it."""
    return sign(stack, doctor, save_draft(stack, manager, **changes))


def deliver_twice(stack: Stack) -> None:
    biller = biller_headers(stack)
    for _ in range(2):
        sent = api(stack, "POST", "/billing/deliver", biller)
        assert sent.status_code == 200, sent.text


def patient_copy(stack: Stack, headers: dict, version_id: str) -> httpx.Response:
    with new_browser() as browser:
        return browser.get(f"{stack.app_url}/patient/care-plan.pdf", params={"version": version_id},
                           headers=headers)


def pdf_text(data: bytes) -> str:
    return " ".join((page.extract_text() or "") for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_the_patient_copy_opens_with_the_summary_and_goals(stack: Stack) -> None:
    patient = "ccm-no-consent"
    manager, _ = launch(stack, patient, user="pr-care-manager")
    doctor, _ = launch(stack, patient, user="pr-billing-md")
    draft = {**fields(plan_page(stack, manager)),
             "goals": "Blood pressure | below 130/80 | 2027-03-01\nWalk daily | 30 minutes | 2027-02-01",
             "allergies": "Penicillin: hives"}
    saved = api(stack, "POST", "/care-plans", manager, json=draft)
    assert saved.status_code == 201, saved.text
    # A draft has no patient copy.
    assert patient_copy(stack, manager, saved.json()["care_plan"]["id"]).status_code == 404
    signed = api(stack, "POST", f"/care-plans/{saved.json()['care_plan']['id']}/sign", doctor, json={})
    assert signed.status_code == 201, signed.text
    version = signed.json()["care_plan"]

    html = plan_page(stack, manager)
    assert f'href="/patient/care-plan.pdf?version={version["id"]}"' in html and "Patient copy (PDF)" in html
    answer = patient_copy(stack, manager, version["id"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"].startswith("inline")
    text = pdf_text(answer.content)
    assert "Your care plan in brief" in text and "Your goals" in text and "Who to call" in text
    assert "Blood pressure: below 130/80, by March 1, 2027" in text
    assert "Walk daily: 30 minutes, by February 1, 2027" in text
    assert "Adaeze Okafor" in text  # who established it, by name
    assert "Allergies and intolerances" in text and "Penicillin: hives" in text
    # The nurse (clinician) may read it too; the biller may not.
    biller, _ = launch(stack, patient, user="pr-biller")
    assert patient_copy(stack, biller, version["id"]).status_code == 403


def test_signing_writes_the_care_plan_and_goals_once_and_a_new_version_revokes_the_old(stack: Stack) -> None:
    patient = "ccm-two-chronic"
    org = stack.organization.id
    manager, _ = launch(stack, patient, user="pr-care-manager")
    doctor, _ = launch(stack, patient, user="pr-billing-md")
    first = draft_and_sign(stack, patient, manager, doctor)
    v1 = first["care_plan"]
    assert first["care_plan"]["ehr"] == "written", first
    assert f"Written to the EHR as {v1['ehr_reference']}" in first["message"]

    (plan_id,) = count(stack, "CarePlan", plan_identifier(org, v1["id"]))
    plan = read(stack, f"CarePlan/{plan_id}")
    assert plan["status"] == "active" and plan["intent"] == "plan"
    assert plan["category"][0]["coding"][0]["code"] == "assess-plan"
    assert plan["subject"]["reference"] == f"Patient/{patient}"
    assert plan["author"]["reference"] == "Practitioner/pr-billing-md"
    assert plan["text"]["status"] == "additional" and plan["text"]["div"].startswith("<div")
    # The Conditions of the chart's problems it addresses, as the EHR names them.
    assert plan["addresses"] and all(a["reference"].startswith("Condition/") for a in plan["addresses"])
    goal_refs = [g["reference"] for g in plan["goal"]]
    assert goal_refs and all(ref.startswith("Goal/") for ref in goal_refs), "urn:uuid references were resolved"
    goals = read_all(stack, goal_refs)
    assert all(g["lifecycleStatus"] == "active" and g["target"][0]["dueDate"] and g["target"][0]["detailString"]
               for g in goals)
    assert all(g["expressedBy"]["reference"] == "Practitioner/pr-billing-md" for g in goals)

    # Signing again is refused, delivering again sends nothing: one CarePlan, one of each Goal.
    again = api(stack, "POST", f"/care-plans/{v1['id']}/sign", doctor, json={})
    assert again.status_code == 422, again.text
    deliver_twice(stack)
    assert count(stack, "CarePlan", plan_identifier(org, v1["id"])) == [plan_id]
    for number in range(1, len(goals) + 1):
        assert len(count(stack, "Goal", goal_identifier(org, v1["id"], number))) == 1
    html = plan_page(stack, doctor)
    assert f"In the EHR: Written to the EHR as CarePlan/{plan_id} with {len(goals)} Goal" in html

    # A newer version: the new CarePlan replaces the old, which is revoked; the old Goals are cancelled.
    second = draft_and_sign(stack, patient, manager, doctor, prognosis="Good, with the new plan.")
    v2 = second["care_plan"]
    assert v2["ehr"] == "written", second
    (new_id,) = count(stack, "CarePlan", plan_identifier(org, v2["id"]))
    new = read(stack, f"CarePlan/{new_id}")
    assert new["replaces"] == [{"reference": f"CarePlan/{plan_id}"}] and new["status"] == "active"
    old = read(stack, f"CarePlan/{plan_id}")
    assert old["status"] == "revoked"
    assert [g["reference"] for g in old["goal"]] == goal_refs, "the revoked plan keeps its Goals for the record"
    assert all(g["lifecycleStatus"] == "cancelled" for g in read_all(stack, goal_refs))
    assert all(g["lifecycleStatus"] == "active" for g in read_all(stack, [g["reference"] for g in new["goal"]]))
    deliver_twice(stack)
    assert count(stack, "CarePlan", plan_identifier(org, v2["id"])) == [new_id]
    assert read(stack, f"CarePlan/{plan_id}")["status"] == "revoked"


@pytest.fixture(scope="module")
def epic_like(tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("care-plan-epic")
    with fresh_database("sqlite", tmp, pg_template) as url, running_stack(url, tmp, profile="epic-like") as stack:
        yield stack


def test_an_ehr_without_care_plan_create_gets_the_patient_copy_as_a_document_once(epic_like: Stack) -> None:
    stack, patient, org = epic_like, "ccm-two-chronic", epic_like.organization.id
    manager, _ = launch(stack, patient, user="pr-care-manager")
    doctor, _ = launch(stack, patient, user="pr-billing-md")
    v1 = draft_and_sign(stack, patient, manager, doctor)["care_plan"]
    assert v1["ehr"] == "written" and v1["ehr_reference"].startswith("DocumentReference/")
    (doc_id,) = count(stack, "DocumentReference", document_identifier(org, v1["id"]))
    assert count(stack, "CarePlan", plan_identifier(org, v1["id"])) == []
    doc = read(stack, f"DocumentReference/{doc_id}")
    assert doc["status"] == "current"
    assert doc["type"]["coding"][0]["code"] == "18776-5"
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert "Your care plan in brief" in pdf_text(base64.b64decode(attachment["data"]))
    deliver_twice(stack)
    assert count(stack, "DocumentReference", document_identifier(org, v1["id"])) == [doc_id]

    v2 = draft_and_sign(stack, patient, manager, doctor, prognosis="Fair.")["care_plan"]
    (new_id,) = count(stack, "DocumentReference", document_identifier(org, v2["id"]))
    new = read(stack, f"DocumentReference/{new_id}")
    assert new["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/{doc_id}"}}]
    assert read(stack, f"DocumentReference/{doc_id}")["status"] == "superseded"
    deliver_twice(stack)
    assert count(stack, "DocumentReference", document_identifier(org, v2["id"])) == [new_id]
    html = html_lib.unescape(plan_page(stack, doctor))
    assert re.search(rf"Written to the EHR as DocumentReference/{re.escape(new_id)}\.", html)


def arm(stack: Stack, kind: str, count_: int) -> None:
    httpx.post(f"{stack.sandbox_url}/_sandbox/faults",
               json={"match": "POST /fhir", "kind": kind, "count": count_}).raise_for_status()


def disarm(stack: Stack) -> None:
    httpx.delete(f"{stack.sandbox_url}/_sandbox/faults").raise_for_status()


def test_an_answer_lost_at_signing_leaves_one_care_plan_after_the_retry(stack: Stack) -> None:
    patient, org = "complex-ccm-high", stack.organization.id
    manager, _ = launch(stack, patient, user="pr-care-manager")
    doctor, _ = launch(stack, patient, user="pr-billing-md")
    draft = save_draft(stack, manager)
    # The EHR writes the CarePlan and its Goals, but its answer never reaches the app.
    arm(stack, "500-after-commit", 1)
    try:
        signed = sign(stack, doctor, draft)
    finally:
        disarm(stack)
    version = signed["care_plan"]
    assert version["ehr"] == "pending" and "Waiting to be sent to the EHR as a CarePlan" in signed["message"]
    assert "In the EHR: Waiting to be sent" in plan_page(stack, doctor)
    # The retry waits out its backoff (seconds); each pass until then sends nothing and is no error.
    biller = biller_headers(stack)
    for _ in range(30):
        sent = api(stack, "POST", "/billing/deliver", biller)
        assert sent.status_code == 200, sent.text
        if "In the EHR: Written" in plan_page(stack, doctor):
            break
        time.sleep(0.5)
    (plan_id,) = count(stack, "CarePlan", plan_identifier(org, version["id"]))
    goals = read(stack, f"CarePlan/{plan_id}")["goal"]
    for number in range(1, len(goals) + 1):
        assert len(count(stack, "Goal", goal_identifier(org, version["id"], number))) == 1
    assert f"Written to the EHR as CarePlan/{plan_id}" in plan_page(stack, doctor)


def test_a_version_never_sent_is_withdrawn_when_a_newer_one_is_signed(stack: Stack) -> None:
    patient, org = "bhi-depression-phq9", stack.organization.id
    manager, _ = launch(stack, patient, user="pr-care-manager")
    doctor, _ = launch(stack, patient, user="pr-billing-md")
    draft = save_draft(stack, manager)
    arm(stack, "500", 50)  # the EHR fails every write while version 1 is signed
    try:
        v1 = sign(stack, doctor, draft)["care_plan"]
    finally:
        disarm(stack)
    assert v1["ehr"] == "pending"
    v2 = draft_and_sign(stack, patient, manager, doctor, prognosis="Fair.")["care_plan"]
    assert v2["ehr"] == "written"
    deliver_twice(stack)
    # Version 1 never reaches the EHR, even once the outbox is retried; version 2 replaces nothing there.
    assert count(stack, "CarePlan", plan_identifier(org, v1["id"])) == []
    (new_id,) = count(stack, "CarePlan", plan_identifier(org, v2["id"]))
    assert "replaces" not in read(stack, f"CarePlan/{new_id}")


def test_the_practitioners_minutes_spent_signing_are_logged_as_care_plan_time(stack: Stack) -> None:
    patient = "ccm-two-chronic"
    manager, _ = launch(stack, patient, user="pr-care-manager")
    doctor, _ = launch(stack, patient, user="pr-billing-md")
    version = save_draft(stack, manager)
    assert 'name="minutes"' in plan_page(stack, doctor).split("Sign and establish")[0], "the sign form asks for time"
    signed = api(stack, "POST", f"/care-plans/{version}/sign", doctor, json={"minutes": 15, "program": "ccm"})
    assert signed.status_code == 201, signed.text
    assert "Recorded" in signed.json()["message"]
    logged = [e for e in api(stack, "GET", "/month", doctor).json()["entries"]
              if e["activity"] == "care-plan-update" and e["performer"] == "Practitioner/pr-billing-md"]
    assert [e["minutes"] for e in logged] == [15]
