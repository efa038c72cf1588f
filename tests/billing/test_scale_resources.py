"""A rating scale as each write-back type takes it: valid FHIR R4 and R4B, one identifier per scale, the items
and the safety alert carried in every form. Pure builders, no EHR."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, date, datetime

import pytest

from smart_app.billing.fhir_resources import SCALE_BUILDERS, business_identifier, business_token, scale_resource
from smart_app.billing.plan import CHOICES
from smart_app.ledger.scales import ScaleRecord
from smart_app.rules.loader import default_rule_set
from smart_app.rules.questionnaires import for_rule_set

PHQ9 = for_rule_set(default_rule_set())["PHQ-9"]
ITEMS = tuple(zip((i.loinc for i in PHQ9.items), (1, 1, 1, 1, 1, 1, 1, 0, 2), strict=True))
SCALE = ScaleRecord(id="s-1", organization_id="org", patient_id="pat-1", scale="PHQ-9", loinc="44261-6", score=9,
                    taken_on=date(2026, 12, 4), month="2026-12", recorded_by="Practitioner/nurse-1",
                    recorded_at=datetime(2026, 12, 4, 15, 30, tzinfo=UTC), note="by phone", items=ITEMS)
TITLE = "Patient Health Questionnaire-9"


def text_of(resource: dict) -> str:
    if resource["resourceType"] == "DocumentReference":
        return base64.b64decode(resource["content"][0]["attachment"]["data"]).decode("utf-8")
    if resource["resourceType"] == "Communication":
        return resource["payload"][0]["contentString"]
    if resource["resourceType"] == "QuestionnaireResponse":
        return resource["text"]["div"]
    return " ".join(note["text"] for note in resource.get("note", []))


def test_every_type_the_plan_may_choose_has_a_builder() -> None:
    assert set(SCALE_BUILDERS) == set(CHOICES["scale"])


@pytest.mark.parametrize("kind", CHOICES["scale"])
def test_each_type_carries_the_scale_once_identified_with_its_safety_alert(kind: str) -> None:
    resource = scale_resource(kind, SCALE, TITLE, PHQ9)  # validated against R4 and R4B as it is built
    ident = business_identifier("scale", "org", "s-1")
    assert business_token(resource) == f"{ident['system']}|{ident['value']}"
    assert scale_resource(kind, SCALE, TITLE, PHQ9) == resource, "the same scale gives the same resource"
    assert "item 9 positive" in text_of(resource)
    alert = scale_resource(kind, SCALE, TITLE, PHQ9, kind="scale-alert")
    assert business_token(alert).startswith("urn:smart-app:scale-alert|")


@pytest.mark.parametrize("kind", CHOICES["scale"])
def test_a_total_only_scale_is_written_by_every_type(kind: str) -> None:
    total_only = dataclasses.replace(SCALE, items=(), note="")
    resource = scale_resource(kind, total_only, TITLE, None)
    assert "item 9" not in str(resource)
    if kind == "Observation":
        assert resource["valueInteger"] == 9 and "component" not in resource
    if kind == "QuestionnaireResponse":
        assert resource["item"] == [{"linkId": "44261-6", "text": f"{TITLE} total score",
                                     "answer": [{"valueInteger": 9}]}]
