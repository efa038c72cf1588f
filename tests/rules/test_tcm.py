"""TCM 99495/99496: contact in 2 business days, visit in 14/7 days, MDM, once per 30 days."""

from __future__ import annotations

import pytest

from smart_app.rules import Discharge, evaluate
from tests.rules.conftest import billed, day, patient, reasons_text, t

# Discharge Friday 2026-03-06: two business days later is Tuesday 2026-03-10.
FRI = day(6)
MON, THU = day(9), day(12)


def dc(contact=MON, f2f=THU, mdm="high", date=FRI, **kw) -> Discharge:
    return Discharge(date, contact_date=contact, face_to_face_date=f2f, complexity=mdm,
                     medication_reconciliation_date=kw.pop("med", f2f), **kw)


CASES = [
    ("high MDM, visit day 6", [dc()], {"99496": 1}, None),
    ("high MDM, visit day 7", [dc(f2f=day(13))], {"99496": 1}, None),
    ("high MDM, visit day 8 falls to 99495", [dc(f2f=day(14))], {"99495": 1}, None),
    ("moderate MDM, visit day 14", [dc(mdm="moderate", f2f=day(20))], {"99495": 1}, None),
    ("moderate MDM, visit day 15", [dc(mdm="moderate", f2f=day(21))], {}, "day 15"),
    ("low MDM", [dc(mdm="low")], {}, "complexity medical decision"),
    ("contact on business day 2 (over a weekend)", [dc(contact=day(10))], {"99496": 1}, None),
    ("contact on business day 3", [dc(contact=day(11))], {}, "interactive contact by 2026-03-10"),
    ("two timely attempts instead of contact",
     [dc(contact=day(12), contact_attempts=(day(9), day(10)))], {"99496": 1}, None),
    ("no face-to-face yet", [dc(f2f=None)], {}, "no face-to-face visit"),
    ("medication reconciliation after visit", [dc(med=day(20))], {},
     "medication reconciliation after"),
    ("second discharge within 30 days", [dc(date=day(20, 2), contact=day(23, 2), f2f=day(25, 2)),
                                         dc(date=day(6), contact=day(9), f2f=day(12))],
     {}, "within 30 days"),
    ("visit in another month is not this month's", [dc(date=day(25, 2), contact=day(26, 2),
                                                       f2f=day(27, 2))], {}, "no discharge"),
]


@pytest.mark.parametrize(("case", "discharges", "expected", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_tcm(rules, case, discharges, expected, reason):
    d = evaluate(patient(discharges=tuple(discharges)), [], rules)
    assert billed(d, "tcm") == expected
    if reason:
        assert reason in reasons_text(d, "tcm")


def test_missing_med_rec_date_is_a_gap_that_holds_the_claim(rules):
    d = evaluate(patient(discharges=(Discharge(FRI, day(9), day(12), "high"),)), [], rules)
    assert billed(d, "tcm") == {"99496": 1}
    assert any("medication reconciliation" in g for g in d.program("tcm").gaps)
    assert not any("medication reconciliation" in w for w in d.program("tcm").warnings)


def test_tcm_minutes_never_count_toward_ccm(rules):
    d = evaluate(patient(complexity="low", discharges=(dc(),)),
                 [t("tcm", 60), t("ccm", 10)], rules)
    assert billed(d, "ccm") == {}
    assert d.program("tcm").minutes_total == 60
    assert d.program("ccm").minutes_total == 10


def test_tcm_needs_no_consent(rules):
    d = evaluate(patient(consents=(), discharges=(dc(),)), [], rules)
    assert billed(d, "tcm") == {"99496": 1}


def test_tcm_blocked_by_apcm_when_policy_prefers_apcm(rules):
    from smart_app.rules import Policy

    d = evaluate(patient(discharges=(dc(),), complexity="low"), [], rules,
                 policy=Policy("prefer", ("G0557",)))
    assert "G0557" in billed(d) and not billed(d, "tcm")
