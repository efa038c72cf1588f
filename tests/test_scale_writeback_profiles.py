"""A scale given item by item reaches each kind of EHR at once: Epic-like takes a QuestionnaireResponse (the
practice routes scales there, as Epic files Observation creates into flowsheet rows it must map); Oracle-like
refuses a survey Observation (422), so a safety alert goes as a Communication to the care team instead, and a
scale without one says it was refused. Real HTTP against the sandbox's profiles, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.billing.test_writeback_e2e import backend_read, count
from tests.databases import BACKENDS, fresh_database
from tests.stack import Stack, running_stack
from tests.test_capture_api import launch
from tests.test_rating_scales import PATIENT
from tests.test_scale_items import PHQ9, answers, record, scale_identifier


@pytest.fixture(scope="module", params=BACKENDS)
def epic(request, tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"scales-epic-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url, \
            running_stack(url, tmp, profile="epic-like", writeback={"scale": "QuestionnaireResponse"}) as stack:
        yield stack


@pytest.fixture(scope="module", params=BACKENDS)
def oracle(request, tmp_path_factory, pg_template) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"scales-oracle-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url, \
            running_stack(url, tmp, profile="oracle-like") as stack:
        yield stack


def test_epic_like_gets_a_questionnaire_response_with_every_answer(epic: Stack) -> None:
    nurse, _ = launch(epic, PATIENT, user="pr-nurse")
    answered = record(epic, nurse, {"scale": "PHQ-9", "items": answers(PHQ9, [3, 2, 2, 1, 1, 1, 0, 0, 1])})
    assert answered.status_code == 201, answered.text
    body = answered.json()
    assert body["alert"]["item"] == 9
    ehr = body["ehr"]
    assert (ehr["status"], ehr["resource_type"]) == ("sent", "QuestionnaireResponse"), ehr["message"]

    response = backend_read(epic, f"QuestionnaireResponse/{ehr['id']}")
    assert response["status"] == "completed"
    assert response["identifier"] == scale_identifier(epic, body["scale"]["id"])
    items = {item["linkId"]: item["answer"][0] for item in response["item"]}
    assert list(items) == [*PHQ9, "44261-6"]
    assert items["44260-8"]["valueCoding"]["code"] == "LA6569-3"
    assert items["44261-6"] == {"valueInteger": 11}
    assert count(epic, "QuestionnaireResponse", scale_identifier(epic, body["scale"]["id"])) == 1


def test_oracle_like_gets_a_safety_alert_as_a_communication(oracle: Stack) -> None:
    nurse, _ = launch(oracle, PATIENT, user="pr-nurse")
    answered = record(oracle, nurse, {"scale": "PHQ-9", "items": answers(PHQ9, [1, 1, 1, 1, 1, 1, 1, 1, 2])})
    assert answered.status_code == 201, answered.text
    body = answered.json()
    ehr = body["ehr"]
    assert (ehr["status"], ehr["resource_type"], ehr["refused_type"]) == ("sent", "Communication", "Observation"), ehr
    assert "refused it as Observation" in ehr["message"]

    sent = backend_read(oracle, f"Communication/{ehr['id']}")
    assert sent["priority"] == "urgent"
    assert sent["topic"]["text"] == "PHQ-9 item 9 positive"
    text = sent["payload"][0]["contentString"]
    assert "SAFETY ALERT" in text and "More than half the days" in text and "total score 10" in text
    scale_id = body["scale"]["id"]
    assert count(oracle, "Observation", scale_identifier(oracle, scale_id)) == 0
    assert count(oracle, "Communication", scale_identifier(oracle, scale_id, "scale-alert")) == 1


def test_oracle_like_refusal_without_an_alert_is_said(oracle: Stack) -> None:
    nurse, _ = launch(oracle, PATIENT, user="pr-nurse")
    answered = record(oracle, nurse, {"scale": "PHQ-9", "items": answers(PHQ9, [0, 1, 0, 1, 0, 1, 0, 1, 0])})
    assert answered.status_code == 201, answered.text
    ehr = answered.json()["ehr"]
    assert (ehr["status"], ehr["resource_type"], ehr["id"]) == ("refused", "Observation", None), ehr
    assert "422" in ehr["message"] and "stays recorded in the app" in ehr["message"]
