"""Estimates: national or for an organization's locality (CMS's GPCI formula), in Decimal cents."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smart_app.errors import ConfigError
from smart_app.rules.rates import (
    NATIONAL,
    EstimateBasis,
    Locality,
    Pricing,
    RateSettings,
    estimate,
    estimate_label,
    monthly_cost_share,
    rate_settings,
)

# Illustrative GPCIs (not a CMS locality), chosen so each RVU part moves the amount differently.
PLACE = Locality("Test locality", Decimal("1.000"), Decimal("1.100"), Decimal("0.500"))
LOCAL = RateSettings(PLACE)


def test_national_estimate_is_the_rule_sets_amount(rules):
    got = estimate(rules.code("99490"), rules)
    assert got.amount == Decimal("66.13") and got.basis is EstimateBasis.NATIONAL
    assert got.conversion_factor == Decimal("33.4009") and got.year == 2026 and not got.fallback


def test_locality_estimate_follows_cms_formula(rules):
    # 99492: [(1.88 x 1.000) + (2.78 x 1.100) + (0.14 x 0.500)] x 33.4009 = 5.008 x 33.4009 = 167.2717...
    got = estimate(rules.code("99492"), rules, LOCAL)
    assert got.amount == Decimal("167.27") and got.basis is EstimateBasis.LOCALITY
    assert got.times(2) == Decimal("334.54")
    # GPCIs of 1.000 give back the national amount.
    flat = RateSettings(Locality("Flat", Decimal(1), Decimal(1), Decimal(1)))
    assert all(estimate(rules.code(c), rules, flat).amount == estimate(rules.code(c), rules).amount
               for c in rules.code_family())


def test_qualifying_apm_conversion_factor_with_a_locality(rules):
    got = estimate(rules.code("99492"), rules, RateSettings(PLACE, qualifying_apm=True))
    # 5.008 x 33.5675 = 168.106... -> 168.11
    assert got.amount == Decimal("168.11") and got.conversion_factor == Decimal("33.5675")


def test_label_says_which_estimate(rules):
    assert estimate_label(rules) == ("national estimate, non-facility, conversion factor $33.4009; not a payment "
                                     "amount")
    label = estimate_label(rules, RateSettings(PLACE, qualifying_apm=True))
    assert label.startswith("locality estimate for Test locality (GPCIs: work 1.000, practice expense 1.100, "
                            "malpractice 0.500)")
    assert "$33.5675 (qualifying APM participant)" in label


def test_a_code_without_rvus_keeps_its_national_figure_and_says_so(rules):
    secondary = rules.code("99490").model_copy(update={"rate": rules.code("99490").rate.model_copy(
        update={"rvu": None, "facility_rvu": None, "checked": "secondary", "note": "vendor", "amount": 66.0})})
    got = estimate(secondary, rules, LOCAL)
    assert got.amount == Decimal("66.00") and got.basis is EstimateBasis.NATIONAL
    assert "national figure is shown" in got.fallback
    assert not estimate(secondary, rules, NATIONAL).fallback


def test_pricing_a_code_the_rule_set_lacks_keeps_the_recorded_figure(rules):
    got = Pricing(rules, LOCAL).unit("99999", 12.5)
    assert got.amount == Decimal("12.50") and got.basis is EstimateBasis.NATIONAL
    assert "not in the rule set" in got.fallback
    assert Pricing(rules).unit("99999").amount is None


def test_settings_from_an_organization_table(rules):
    table = {"locality": "Manhattan", "work_gpci": 1.094, "pe_gpci": "1.442", "mp_gpci": 1.5,
             "conversion_factor": "qualifying-apm"}
    got = rate_settings(table, "launch/x.toml", rules)
    assert got.locality == Locality("Manhattan", Decimal("1.094"), Decimal("1.442"), Decimal("1.5"))
    assert got.qualifying_apm
    assert rate_settings(None, "launch/x.toml", rules) == NATIONAL
    assert rate_settings({"conversion_factor": "standard"}, "launch/x.toml", rules) == NATIONAL


@pytest.mark.parametrize(("table", "message"), [
    ({"locality": "X", "work_gpci": 1.0, "pe_gpci": 1.0}, "lacks mp_gpci"),
    ({"work_gpci": 1.0, "pe_gpci": 1.0, "mp_gpci": 1.0}, "lacks locality"),
    ({"locality": "X", "work_gpci": "one", "pe_gpci": 1.0, "mp_gpci": 1.0}, "work_gpci = 'one' is not a GPCI"),
    ({"locality": "X", "work_gpci": 1.0, "pe_gpci": 10.4, "mp_gpci": 1.0}, "pe_gpci = 10.4 is not a GPCI"),
    ({"locality": "X", "work_gpci": 1.0, "pe_gpci": 1.0, "mp_gpci": True}, "mp_gpci = True is not a GPCI"),
    ({"locality": " ", "work_gpci": 1.0, "pe_gpci": 1.0, "mp_gpci": 1.0}, "locality is empty"),
    ({"conversion_factor": "qpp"}, "conversion_factor = 'qpp' is not a choice"),
    ({"gpci_work": 1.0}, "unknown key(s) gpci_work"),
    ("1.0", "must be a table"),
])
def test_bad_settings_are_refused_with_what_to_write(rules, table, message):
    with pytest.raises(ConfigError) as info:
        rate_settings(table, "launch/x.toml", rules)
    assert "launch/x.toml" in info.value.message and message in info.value.message
    assert info.value.hint


def test_qualifying_apm_needs_the_rule_sets_second_conversion_factor(rules):
    bare = rules.model_copy(update={"conversion_factor": rules.conversion_factor.model_copy(
        update={"qualifying_apm": None})})
    with pytest.raises(ConfigError, match="no qualifying-APM conversion factor"):
        rate_settings({"conversion_factor": "qualifying-apm"}, "launch/x.toml", bare)


def test_monthly_cost_share_is_twenty_percent_of_the_cheapest_and_fullest_month(rules):
    ccm = monthly_cost_share(Pricing(rules), "ccm")
    # 99490 alone: 66.13 x 0.20; 99490 + 2 x 99439: (66.13 + 100.88) x 0.20 = 33.402
    assert (ccm.low, ccm.low_codes) == (Decimal("13.23"), (("99490", 1),))
    assert (ccm.high, ccm.high_codes) == (Decimal("33.40"), (("99490", 1), ("99439", 2)))
    assert ccm.share == Decimal("0.2") and ccm.basis is EstimateBasis.NATIONAL
    apcm = monthly_cost_share(Pricing(rules), "apcm")
    # G0556 alone (16.37) to G0558 with the CoCM first-month add-on G0568 (117.24 + 161.66).
    assert (apcm.low, apcm.high, apcm.high_codes) == (Decimal("3.27"), Decimal("55.78"),
                                                      (("G0558", 1), ("G0568", 1)))
    local = monthly_cost_share(Pricing(rules, LOCAL), "bhi")
    assert local.basis is EstimateBasis.LOCALITY and local.low == local.high
    assert local.low == (estimate(rules.code("99484"), rules, LOCAL).amount * Decimal("0.2")).quantize(
        Decimal("0.01"))
    assert monthly_cost_share(Pricing(rules), "tcm-unknown-program") is None
