"""PCM 99424/99425 (practitioner) and 99426/99427 (staff): 30-minute periods, one high-risk condition."""

from __future__ import annotations

import pytest

from smart_app.rules import Policy, evaluate
from tests.rules.conftest import billed, cond, patient, reasons_text, t

PCM_FIRST = Policy("prefer", ("99424", "99426"))

CASES = [
    ("29 staff minutes", [t("pcm", 29)], {}, "1 more minutes of clinical-staff"),
    ("30 staff minutes", [t("pcm", 30)], {"99426": 1}, None),
    ("59 staff minutes", [t("pcm", 59)], {"99426": 1}, None),
    ("60 staff minutes", [t("pcm", 60)], {"99426": 1, "99427": 1}, None),
    ("90 staff minutes", [t("pcm", 90)], {"99426": 1, "99427": 2}, None),
    ("99427 cap of 2", [t("pcm", 300)], {"99426": 1, "99427": 2}, None),
    ("29 practitioner minutes", [t("pcm", 29, "billing-practitioner")], {}, "1 more minutes"),
    ("30 practitioner minutes", [t("pcm", 30, "billing-practitioner")], {"99424": 1}, None),
    ("60 practitioner minutes", [t("pcm", 60, "billing-practitioner")],
     {"99424": 1, "99425": 1}, None),
    ("99425 cap of 1", [t("pcm", 200, "billing-practitioner")], {"99424": 1, "99425": 1}, None),
    ("practitioner minutes do not count toward 99426", [t("pcm", 20), t("pcm", 15,
     "billing-practitioner")], {}, "10 more minutes of clinical-staff"),
]


@pytest.mark.parametrize(("case", "entries", "expected", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_pcm_time(rules, case, entries, expected, reason):
    d = evaluate(patient(), entries, rules, policy=PCM_FIRST)
    assert billed(d, "pcm") == expected
    if reason:
        assert reason in reasons_text(d, "pcm")


def test_staff_and_practitioner_paths_exclusive(rules):
    d = evaluate(patient(), [t("pcm", 60), t("pcm", 60, "billing-practitioner")], rules,
                 policy=PCM_FIRST)
    codes = billed(d, "pcm")
    assert not ({"99424", "99425"} & codes.keys() and {"99426", "99427"} & codes.keys())


EVIDENCE_CASES = [
    ("no high-risk flag", dict(conditions=(cond("E11.9"), cond("I10"))), "marked high-risk"),
    ("high-risk flag on an acute condition", dict(conditions=(cond("J18.9", high_risk=True),)),
     "marked high-risk"),
    ("no consent", dict(consents=()), "no consent"),
    ("no initiating visit", dict(initiating_visit=None), "no initiating visit"),
]


@pytest.mark.parametrize(("case", "overrides", "reason"), EVIDENCE_CASES,
                         ids=[c[0] for c in EVIDENCE_CASES])
def test_pcm_evidence(rules, case, overrides, reason):
    d = evaluate(patient(**overrides), [t("pcm", 45)], rules, policy=PCM_FIRST)
    assert billed(d, "pcm") == {}
    assert reason in reasons_text(d, "pcm")


def test_pcm_and_ccm_exclusive_and_listed_as_alternatives(rules):
    entries = [t("pcm", 30), t("ccm", 20)]
    d = evaluate(patient(complexity="low"), entries, rules)
    codes = billed(d)
    assert not ({"99424", "99425", "99426", "99427"} & codes.keys()
                and {"99490", "99439", "99491", "99437"} & codes.keys())
    # 30 PCM minutes beat 20 CCM minutes under the default policy; CCM says why it lost.
    assert codes == {"99426": 1}
    assert "excluded by 99426" in reasons_text(d, "ccm")
