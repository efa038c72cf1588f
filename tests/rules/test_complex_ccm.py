"""Complex CCM 99487/99489: 60-minute base, 30-minute add-ons, moderate/high complexity only."""

from __future__ import annotations

import pytest

from smart_app.rules import evaluate
from tests.rules.conftest import billed, patient, reasons_text, t

CASES = [
    # (case, complexity, staff minutes, expected complex codes, expected ccm codes, reason)
    ("59 minutes", "moderate", 59, {}, {"99490": 1, "99439": 1}, "1 more minutes"),
    # 60 minutes sit behind either; documented complexity is the fuller documentation.
    ("60 minutes", "moderate", 60, {"99487": 1}, {}, None),
    ("89 minutes", "high", 89, {"99487": 1}, {}, None),
    ("90 minutes: one 99489", "moderate", 90, {"99487": 1, "99489": 1}, {}, None),
    ("119 minutes", "moderate", 119, {"99487": 1, "99489": 1}, {}, None),
    ("120 minutes: two 99489", "moderate", 120, {"99487": 1, "99489": 2}, {}, None),
    ("cap: 99489 at most 4", "moderate", 600, {"99487": 1, "99489": 4}, {}, None),
    ("low complexity never complex", "low", 120, {}, {"99490": 1, "99439": 2},
     "moderate or high complexity"),
    ("no complexity documented", None, 120, {}, {"99490": 1, "99439": 2}, "none documented"),
]


@pytest.mark.parametrize(("case", "complexity", "minutes", "complex_codes", "ccm_codes",
                          "reason"), CASES, ids=[c[0] for c in CASES])
def test_complex_ccm(rules, case, complexity, minutes, complex_codes, ccm_codes, reason):
    d = evaluate(patient(complexity=complexity), [t("ccm", minutes)], rules)
    assert billed(d, "complex_ccm") == complex_codes
    assert billed(d, "ccm") == ccm_codes
    if reason:
        assert reason in reasons_text(d, "complex_ccm")


def test_complex_and_non_complex_never_together(rules):
    for minutes in range(0, 200, 7):
        codes = billed(evaluate(patient(complexity="high"), [t("ccm", minutes)], rules))
        assert not ({"99487", "99489"} & codes.keys() and
                    {"99490", "99439", "99491", "99437"} & codes.keys())


def test_highest_rate_policy_prefers_complex_when_it_pays_more(rules):
    from smart_app.rules import Policy

    d = evaluate(patient(complexity="high"), [t("ccm", 90)], rules,
                 policy=Policy("highest_rate"))
    assert billed(d).keys() >= {"99487", "99489"}
    assert d.policy == "highest_rate"


def test_non_complex_listed_as_alternative(rules):
    d = evaluate(patient(complexity="moderate"), [t("ccm", 60)], rules)
    assert "excluded by 99487" in reasons_text(d, "ccm")
