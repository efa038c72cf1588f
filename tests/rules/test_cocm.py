"""CoCM 99492/99493/99494 and G2214 under the CPT midpoint rule."""

from __future__ import annotations

import datetime as dt

import pytest

from smart_app.rules import Episode, evaluate
from tests.rules.conftest import billed, patient, reasons_text, t

INITIAL = (Episode("cocm", dt.date(2026, 3, 2)),)
LATER = (Episode("cocm", dt.date(2026, 1, 10)),)

CASES = [
    # initial month: 99492 from 36 (midpoint of 70); 99494 from 70 + 16 = 86
    ("initial 15: nothing", INITIAL, 15, {}),
    ("initial 16: G2214 from its midpoint", INITIAL, 16, {"G2214": 1}),
    ("initial 35: G2214", INITIAL, 35, {"G2214": 1}),
    ("initial 36: 99492", INITIAL, 36, {"99492": 1}),
    ("initial 85: 99492", INITIAL, 85, {"99492": 1}),
    ("initial 86: 99492 + 99494", INITIAL, 86, {"99492": 1, "99494": 1}),
    ("initial 116: 99492 + 2x99494", INITIAL, 116, {"99492": 1, "99494": 2}),
    ("initial cap", INITIAL, 400, {"99492": 1, "99494": 2}),
    # later months: 99493 from 31 (midpoint of 60); 99494 from 60 + 16 = 76
    ("later 30: G2214", LATER, 30, {"G2214": 1}),
    ("later 31: 99493", LATER, 31, {"99493": 1}),
    ("later 75: 99493", LATER, 75, {"99493": 1}),
    ("later 76: 99493 + 99494", LATER, 76, {"99493": 1, "99494": 1}),
    ("later 106: 99493 + 2x99494", LATER, 106, {"99493": 1, "99494": 2}),
    ("no episode: only G2214", (), 60, {"G2214": 1}),
]


@pytest.mark.parametrize(("case", "episodes", "minutes", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_cocm_midpoints(rules, case, episodes, minutes, expected):
    d = evaluate(patient(episodes=episodes), [t("cocm", minutes, "care-manager")], rules)
    assert billed(d, "cocm") == expected


def test_no_episode_is_undetermined(rules):
    d = evaluate(patient(episodes=()), [t("cocm", 10, "care-manager")], rules)
    assert "cannot tell the initial month" in reasons_text(d, "cocm")


ROLE_CASES = [
    ("care manager counts", "care-manager", {"99493": 1}),
    ("treating practitioner counts", "billing-practitioner", {"99493": 1}),
    ("clinical staff does not", "clinical-staff", {}),
    ("psychiatric consultant does not", "psychiatric-consultant", {}),
]


@pytest.mark.parametrize(("case", "role", "expected"), ROLE_CASES, ids=[c[0] for c in ROLE_CASES])
def test_cocm_roles(rules, case, role, expected):
    d = evaluate(patient(), [t("cocm", 40, role)], rules)
    assert billed(d, "cocm") == expected


def test_g2214_never_with_base_codes(rules):
    for minutes in range(0, 200, 5):
        for eps in (INITIAL, LATER, ()):
            codes = billed(evaluate(patient(episodes=eps), [t("cocm", minutes, "care-manager")],
                                    rules))
            assert not ("G2214" in codes and {"99492", "99493", "99494"} & codes.keys())
            assert not ("99492" in codes and "99493" in codes)


EVIDENCE_CASES = [
    ("no rating scale", dict(rating_scales=()), "no PHQ-9"),
    ("no consent", dict(consents=()), "no consent"),
]


@pytest.mark.parametrize(("case", "overrides", "reason"), EVIDENCE_CASES,
                         ids=[c[0] for c in EVIDENCE_CASES])
def test_cocm_evidence(rules, case, overrides, reason):
    d = evaluate(patient(**overrides), [t("cocm", 60, "care-manager")], rules)
    assert billed(d, "cocm") == {}
    assert reason in reasons_text(d, "cocm")
