"""APCM G0556-G0558: monthly, by chronic-condition count and QMB status; excludes CCM/PCM/TCM."""

from __future__ import annotations

import pytest

from smart_app.rules import Attestation, Policy, evaluate
from tests.rules.conftest import SNOMED, billed, cond, day, patient, reasons_text, t

APCM_FIRST = Policy("prefer", ("G0556", "G0557", "G0558"))

CASES = [
    ("two chronic, not QMB", {}, {"G0557": 1}, None),
    ("two chronic, QMB", dict(qmb=True), {"G0558": 1}, None),
    ("QMB unknown blocks levels 2 and 3", dict(qmb=None), {}, "status unknown"),
    ("one chronic", dict(conditions=(cond("E11.9"), cond("J18.9"))), {"G0556": 1}, None),
    ("no conditions", dict(conditions=()), {"G0556": 1}, None),
    ("no consent", dict(consents=()), {}, "no consent"),
    ("initiating visit within 3 years", dict(initiating_visit=day(1, 4, 2023)), {"G0557": 1},
     None),
    ("initiating visit older than 3 years", dict(initiating_visit=day(1, 1, 2023)), {},
     "more than 36 months"),
]


@pytest.mark.parametrize(("case", "overrides", "expected", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_apcm(rules, case, overrides, expected, reason):
    d = evaluate(patient(**overrides), [], rules, policy=APCM_FIRST)
    assert billed(d, "apcm") == expected
    if reason:
        assert reason in reasons_text(d, "apcm")


def test_apcm_excludes_ccm_pcm_tcm_same_practitioner(rules):
    from smart_app.rules import Discharge

    facts = patient(discharges=(Discharge(day(6), day(9), day(12), "high", None, (), day(12)),))
    entries = [t("ccm", 60), t("pcm", 60)]
    d = evaluate(facts, entries, rules, policy=APCM_FIRST)
    codes = billed(d)
    assert "G0557" in codes
    assert not codes.keys() & {"99490", "99439", "99491", "99437", "99487", "99489", "99424",
                               "99425", "99426", "99427", "99495", "99496"}
    assert "excluded by G0557" in reasons_text(d, "ccm")


def test_apcm_allows_bhi_same_month(rules):
    d = evaluate(patient(), [t("bhi", 20)], rules, policy=APCM_FIRST)
    assert billed(d) == {"G0557": 1, "99484": 1}


def test_attested_snomed_condition_counts(rules):
    facts = patient(conditions=(cond("E11.9"), cond("44054006", "snomed-1", system=SNOMED)),
                    attestations=(Attestation(True, "Dr Who", day(2), condition_id="snomed-1"),))
    d = evaluate(facts, [], rules, policy=APCM_FIRST)
    assert billed(d, "apcm") == {"G0557": 1}


def test_undetermined_condition_reported_and_attestable(rules):
    facts = patient(conditions=(cond("E11.9"), cond("44054006", "snomed-1", system=SNOMED)))
    d = evaluate(facts, [t("ccm", 30)], rules)
    assert "undetermined" in reasons_text(d, "ccm")
    assert "attest" in reasons_text(d, "ccm")
