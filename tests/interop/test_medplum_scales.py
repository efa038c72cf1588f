"""A rating scale as each write-back type carries it, against Medplum's validator (structure and FHIRPath
invariants, which the R4 and R4B models the builders use do not check): a PHQ-9 given item by item with item 9
above 0, a GAD-7, and a total-only PHQ-2."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from smart_app.billing.fhir_resources import scale_resource
from smart_app.billing.plan import CHOICES
from smart_app.ledger.scales import ScaleRecord
from smart_app.rules.loader import default_rule_set
from smart_app.rules.questionnaires import for_rule_set
from tests.interop.conftest import Medplum

FORMS = for_rule_set(default_rule_set())
PHQ9 = FORMS["PHQ-9"]
GAD7 = FORMS["GAD-7"]
PHQ9_SCALE = ScaleRecord(
    id="s-phq9", organization_id="org", patient_id="pat-1", scale="PHQ-9", loinc=PHQ9.total_loinc, score=10,
    taken_on=date(2026, 12, 4), month="2026-12", recorded_by="Practitioner/pr-nurse",
    recorded_at=datetime(2026, 12, 4, 15, 30, tzinfo=UTC), note="by phone",
    items=tuple(zip((i.loinc for i in PHQ9.items), (1, 1, 1, 1, 1, 1, 1, 2, 1), strict=True)))
GAD7_SCALE = dataclasses.replace(
    PHQ9_SCALE, id="s-gad7", scale="GAD-7", loinc=GAD7.total_loinc, score=7, note="",
    items=tuple(zip((i.loinc for i in GAD7.items), (1,) * 7, strict=True)))
TOTAL_ONLY = dataclasses.replace(PHQ9_SCALE, id="s-phq2", scale="PHQ-2", loinc="55758-7", score=3, items=())


@pytest.mark.parametrize("kind", CHOICES["scale"])
def test_every_scale_form_passes_medplums_validator(medplum: Medplum, kind: str) -> None:
    cases = [(PHQ9_SCALE, PHQ9, "scale"), (PHQ9_SCALE, PHQ9, "scale-alert"), (GAD7_SCALE, GAD7, "scale"),
             (TOTAL_ONLY, None, "scale")]
    for scale, questionnaire, purpose in cases:
        resource = scale_resource(kind, scale, scale.scale, questionnaire, kind=purpose)
        assert medplum.validate(resource) == [], (kind, scale.scale, purpose)
