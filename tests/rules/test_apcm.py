"""APCM G0556-G0558: monthly, by chronic-condition count and QMB status; excludes CCM/PCM/TCM."""

from __future__ import annotations

import pytest

from smart_app.rules import Attestation, Policy, evaluate
from tests.rules.conftest import SNOMED, billed, cond, day, patient, reasons_text, t

APCM_FIRST = Policy("prefer", ("G0556", "G0557", "G0558"))
LEVELS = ("G0556", "G0557", "G0558")

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
    # The level only: the well-documented patient also qualifies for a behavioral add-on (below).
    assert {c: u for c, u in billed(d, "apcm").items() if c in LEVELS} == expected
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


# -- the CY2026 behavioral health add-ons G0568-G0570 -----------------------------------------------

BH_ADDONS = ("G0568", "G0569", "G0570")


def without_consent(*programs: str):
    """The well-documented patient's consents, less those for `programs`."""
    return tuple(c for c in patient().consents if c.program not in programs)


def initial_cocm_month():
    """A CoCM episode that starts in the service month (March 2026)."""
    from smart_app.rules import Episode

    return (Episode("cocm", day(2)),)


ADDON_CASES = [
    ("CoCM episode in a later month: G0569", {}, {"G0557": 1, "G0569": 1}),
    ("CoCM episode starting this month: G0568", dict(episodes=initial_cocm_month()), {"G0557": 1, "G0568": 1}),
    ("BHI consent, no CoCM consent: G0570", dict(consents=without_consent("cocm")), {"G0557": 1, "G0570": 1}),
    ("with the one-condition level G0556", dict(conditions=(cond("F33.1", "mdd"),), consents=without_consent("cocm")),
     {"G0556": 1, "G0570": 1}),
    ("QMB level G0558", dict(qmb=True), {"G0558": 1, "G0569": 1}),
    ("no behavioral diagnosis: level only", dict(conditions=(cond("E11.9"), cond("I10"))), {"G0557": 1}),
    ("no rating scale this month: level only", dict(rating_scales=()), {"G0557": 1}),
    ("no BHI or CoCM consent: level only", dict(consents=without_consent("cocm", "bhi")), {"G0557": 1}),
]


@pytest.mark.parametrize(("case", "overrides", "expected"), ADDON_CASES, ids=[c[0] for c in ADDON_CASES])
def test_behavioral_addon_is_billed_with_the_apcm_level(rules, case, overrides, expected):
    d = evaluate(patient(**overrides), [], rules)
    assert billed(d) == expected
    # No time is counted or needed: the add-ons' descriptors carry none.
    assert all(c.minutes == 0 for c in d.billed())


@pytest.mark.parametrize(("overrides", "why"), [
    (dict(qmb=None), "G0569: an add-on, billed only with G0556, G0557 or G0558 (Advanced primary care management) "
                     "by the same practitioner in the same month, and none of those is billable"),
    (dict(consents=without_consent("apcm")), "no consent on file for Advanced primary care management"),
], ids=["QMB unknown blocks every level", "no APCM consent"])
def test_behavioral_addon_is_refused_alone(rules, overrides, why):
    d = evaluate(patient(**overrides), [], rules, policy=Policy("prefer", BH_ADDONS))
    assert not billed(d, "apcm")
    assert why in reasons_text(d, "apcm")


REFUSED = [
    # (case, facts, time, the standalone code billed, the add-on refused)
    ("99493 this month", {}, [t("cocm", 40, "care-manager")], "99493", "G0569"),
    ("99492 this month", dict(episodes=initial_cocm_month()), [t("cocm", 40, "care-manager")], "99492", "G0568"),
    ("99484 this month", dict(consents=without_consent("cocm")), [t("bhi", 20)], "99484", "G0570"),
]


@pytest.mark.parametrize(("case", "overrides", "time", "standalone", "addon"), REFUSED, ids=[r[0] for r in REFUSED])
def test_behavioral_addon_is_refused_with_the_standalone_code_of_that_practitioner(rules, case, overrides, time,
                                                                                  standalone, addon):
    facts = patient(**overrides)
    d = evaluate(facts, time, rules)
    codes = billed(d)
    # The documented minutes win under the default policy: the standalone code with the APCM level.
    assert standalone in codes and "G0557" in codes and addon not in codes
    notes = [a.note for a in d.program("apcm").alternatives if (addon, 1) in a.codes]
    assert notes and all(f"excluded by {standalone}" in n for n in notes)
    # Preferring the add-on bills it instead; never both.
    preferred = billed(evaluate(facts, time, rules, policy=Policy("prefer", (addon,))))
    assert addon in preferred and standalone not in preferred


def test_behavioral_addons_exclude_cocm_and_bhi_for_the_same_practitioner(rules):
    for addon in BH_ADDONS:
        excluded = {c: e.scope for e in rules.code(addon).exclusions for c in e.codes}
        for code in ("99484", "99492", "99493", "99494", "G2214"):
            assert excluded[code] == "same-practitioner", (addon, code)
        assert set(rules.code(addon).base_codes) == set(LEVELS)
        assert rules.code(addon).time.counting == "none"
