"""General BHI 99484: 20 minutes, a behavioral-health diagnosis and a rating scale this month."""

from __future__ import annotations

import pytest

from smart_app.rules import RatingScale, evaluate
from tests.rules.conftest import SNOMED, billed, cond, day, patient, reasons_text, t

CASES = [
    ("19 minutes", {}, [t("bhi", 19)], {}, "1 more minutes of clinical-staff or care-manager"),
    ("20 minutes", {}, [t("bhi", 20)], {"99484": 1}, None),
    ("cap of 1 unit", {}, [t("bhi", 120)], {"99484": 1}, None),
    ("practitioner minutes not counted", {}, [t("bhi", 30, "billing-practitioner")], {},
     "20 more minutes"),
    ("no rating scale", dict(rating_scales=()), [t("bhi", 30)], {}, "no PHQ-9 or GAD-7"),
    ("scale last month", dict(rating_scales=(RatingScale("PHQ-9", day(27, 2)),)),
     [t("bhi", 30)], {}, "no PHQ-9 or GAD-7"),
    ("GAD-7 by LOINC", dict(rating_scales=(RatingScale("69737-5", day(4)),)), [t("bhi", 30)],
     {"99484": 1}, None),
    ("unknown scale", dict(rating_scales=(RatingScale("XYZ", day(4)),)), [t("bhi", 30)], {},
     "no PHQ-9"),
    ("no behavioral diagnosis", dict(conditions=(cond("E11.9"), cond("I10"))), [t("bhi", 30)],
     {}, "chapter F"),
    ("SNOMED-only diagnosis is undetermined",
     dict(conditions=(cond("35489007", "snomed-dep", system=SNOMED),)), [t("bhi", 30)], {},
     "undetermined"),
    ("no consent", dict(consents=()), [t("bhi", 30)], {}, "no consent"),
]


@pytest.mark.parametrize(("case", "overrides", "entries", "expected", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_bhi(rules, case, overrides, entries, expected, reason):
    d = evaluate(patient(**overrides), entries, rules)
    assert billed(d, "bhi") == expected
    if reason:
        assert reason in reasons_text(d, "bhi")


def test_bhi_evidence_lists_scale_and_diagnosis(rules):
    d = evaluate(patient(), [t("bhi", 20)], rules)
    kinds = {(e.kind, e.id) for e in d.program("bhi").evidence}
    assert ("rating_scale", "phq") in kinds and ("condition", "dep") in kinds
    assert ("consent", "consent-bhi") in kinds


def test_bhi_and_cocm_never_together(rules):
    d = evaluate(patient(), [t("bhi", 20), t("cocm", 60, "care-manager")], rules)
    codes = billed(d)
    assert "99484" not in codes or not ({"99492", "99493", "99494", "G2214"} & codes.keys())
    assert codes.keys() & {"99493"}  # 60 CoCM minutes beat 20 BHI minutes
    assert "excluded by" in reasons_text(d, "bhi")
