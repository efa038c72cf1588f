"""CCM 99490/99439 (clinical staff) and 99491/99437 (practitioner personally): cases as data."""

from __future__ import annotations

import dataclasses

import pytest

from smart_app.rules import Consent, evaluate
from tests.rules.conftest import billed, cond, day, patient, reasons_text, t

# (case, minutes entries, expected CCM codes, reason fragment when not billable)
TIME_CASES = [
    ("nothing logged", [], {}, "0 of 20 minutes"),
    ("19 staff minutes", [t("ccm", 19)], {}, "1 more minutes of clinical-staff"),
    ("20 staff minutes", [t("ccm", 20)], {"99490": 1}, None),
    ("39 staff minutes", [t("ccm", 39)], {"99490": 1}, None),
    ("40 staff minutes", [t("ccm", 40)], {"99490": 1, "99439": 1}, None),
    ("59 staff minutes", [t("ccm", 59)], {"99490": 1, "99439": 1}, None),
    ("60 staff minutes", [t("ccm", 60)], {"99490": 1, "99439": 2}, None),
    ("cap: 200 staff minutes", [t("ccm", 200)], {"99490": 1, "99439": 2}, None),
    ("care manager counts as staff", [t("ccm", 20, "care-manager")], {"99490": 1}, None),
    ("split entries add up", [t("ccm", 12, d=2), t("ccm", 8, d=20)], {"99490": 1}, None),
    ("practitioner 29 counts toward staff path", [t("ccm", 29, "billing-practitioner")],
     {"99490": 1}, None),
    ("practitioner 30: 99491 supports more minutes", [t("ccm", 30, "billing-practitioner")],
     {"99491": 1}, None),
    # 60 minutes sit behind either path; the tie goes to the higher national rate total.
    ("practitioner 60: tie on minutes", [t("ccm", 60, "billing-practitioner")],
     {"99490": 1, "99439": 2}, None),
    ("practitioner 45 + staff 0", [t("ccm", 45, "billing-practitioner")],
     {"99490": 1, "99439": 1}, None),
    ("psychiatric consultant never counts", [t("ccm", 45, "psychiatric-consultant")], {},
     "0 of 20 minutes"),
    ("other month ignored", [t("ccm", 30).__class__("ccm", 30, "clinical-staff", day(28, 2))],
     {}, "0 of 20"),
]


@pytest.mark.parametrize(("case", "entries", "expected", "reason"), TIME_CASES,
                         ids=[c[0] for c in TIME_CASES])
def test_ccm_time_boundaries(rules, case, entries, expected, reason):
    facts = patient(complexity="low")  # keep complex CCM out of the way
    d = evaluate(facts, entries, rules)
    assert billed(d, "ccm") == expected
    if reason:
        assert reason in reasons_text(d, "ccm")


def test_staff_and_practitioner_paths_never_both(rules):
    d = evaluate(patient(complexity="low"),
                 [t("ccm", 40), t("ccm", 30, "billing-practitioner")], rules)
    codes = billed(d, "ccm")
    assert not ({"99490", "99439"} & codes.keys() and {"99491", "99437"} & codes.keys())
    # 70 minutes behind the staff path (practitioner time counts as staff time) beats 30.
    assert codes == {"99490": 1, "99439": 2}
    alts = d.program("ccm").alternatives
    assert len(alts) == 2 and sum(a.chosen for a in alts) == 1


def test_minutes_by_role_and_no_double_count(rules):
    d = evaluate(patient(complexity="low"),
                 [t("ccm", 25, d=2, eid="a"), t("ccm", 20, "care-manager", d=9, eid="b")], rules)
    c = {x.code: x for x in d.billed()}
    assert c["99490"].minutes == 20 and dict(c["99490"].minutes_by_role) == {"clinical-staff": 20}
    assert dict(c["99439"].minutes_by_role) == {"clinical-staff": 5, "care-manager": 15}
    assert sum(x.minutes for x in d.billed() if x.program == "ccm") == 40


EVIDENCE_CASES = [
    ("no consent", dict(consents=()), "no consent on file"),
    ("consent withdrawn", dict(consents=(Consent("ccm", "active", day(5, 1)),
                                         Consent("ccm", "inactive", day(2)))), "'inactive'"),
    ("one chronic condition", dict(conditions=(cond("E11.9"), cond("J18.9"))),
     "needs 2 chronic conditions; 1 found"),
    ("same category counted once", dict(conditions=(cond("E11.9"), cond("E11.65"))),
     "needs 2 chronic conditions; 1 found"),
    ("no initiating visit", dict(initiating_visit=None), "no initiating visit"),
    ("initiating visit too old", dict(initiating_visit=day(28, 2, 2025)), "more than 12 months"),
    ("resolved condition", dict(conditions=(cond("E11.9"), cond("I10", clinical_status="resolved"))),
     "1 found"),
    ("entered in error", dict(conditions=(cond("E11.9"),
                                          cond("I10", verification_status="entered-in-error"))),
     "1 found"),
]


@pytest.mark.parametrize(("case", "overrides", "reason"), EVIDENCE_CASES,
                         ids=[c[0] for c in EVIDENCE_CASES])
def test_ccm_evidence(rules, case, overrides, reason):
    d = evaluate(patient(complexity="low", **overrides), [t("ccm", 45)], rules)
    assert billed(d, "ccm") == {}
    assert reason in reasons_text(d, "ccm")


def test_initiating_visit_twelve_months_back_is_enough(rules):
    d = evaluate(patient(complexity="low", initiating_visit=day(1, 3, 2025)), [t("ccm", 20)],
                 rules)
    assert billed(d, "ccm") == {"99490": 1}


def test_minutes_before_consent_not_counted(rules):
    facts = patient(complexity="low", consents=(Consent("ccm", "active", day(15)),))
    d = evaluate(facts, [t("ccm", 15, d=3), t("ccm", 15, d=20)], rules)
    assert billed(d, "ccm") == {}
    assert any("before consent" in w for w in d.program("ccm").warnings)


def test_missing_care_plan_is_a_warning_not_a_block(rules):
    d = evaluate(patient(complexity="low", care_plans=()), [t("ccm", 20)], rules)
    assert billed(d, "ccm") == {"99490": 1}
    assert any("care plan" in w for w in d.program("ccm").warnings)


def test_ccm_and_tcm_same_month_share_no_minutes(rules):
    from smart_app.rules import Discharge

    facts = patient(complexity="low", discharges=(
        Discharge(day(2), contact_date=day(3), face_to_face_date=day(6), complexity="moderate",
                  medication_reconciliation_date=day(6)),))
    d = evaluate(facts, [t("ccm", 20), t("tcm", 40)], rules)
    assert billed(d) == {"99490": 1, "99495": 1}
    assert d.program("ccm").minutes_total == 20
    assert dataclasses.asdict(d)  # plain values all the way down


PREFER_CASES = [
    ("99491 at 59", 59, {"99491": 1}),
    ("99491 + 99437 at 60", 60, {"99491": 1, "99437": 1}),
    ("99437 capped at 1 unit", 150, {"99491": 1, "99437": 1}),
]


@pytest.mark.parametrize(("case", "minutes", "expected"), PREFER_CASES,
                         ids=[c[0] for c in PREFER_CASES])
def test_practitioner_path_by_policy(rules, case, minutes, expected):
    from smart_app.rules import Policy

    d = evaluate(patient(complexity="low"), [t("ccm", minutes, "billing-practitioner")], rules,
                 policy=Policy("prefer", ("99491", "99437")))
    assert billed(d, "ccm") == expected
