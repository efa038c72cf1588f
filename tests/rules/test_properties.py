"""Hypothesis: more minutes never bill less; caps, exclusions and consent always hold."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smart_app.rules import Consent, Policy, TimeEntry, default_rule_set, evaluate
from smart_app.rules.evaluate import _exclusion_map, _score
from tests.rules.conftest import day, patient

RULES = default_rule_set("medicare", 2026)
EXCL = _exclusion_map(RULES)
PROGRAMS = ["ccm", "pcm", "bhi", "cocm", "tcm", "apcm"]
ROLES = ["clinical-staff", "care-manager", "billing-practitioner", "psychiatric-consultant"]
POLICIES = [Policy(), Policy("highest_rate"), Policy("prefer", ("G0557", "99491"))]

entry = st.builds(lambda p, m, r, d: TimeEntry(p, m, r, day(d)), st.sampled_from(PROGRAMS),
                  st.integers(1, 90), st.sampled_from(ROLES), st.integers(1, 31))
facts = st.builds(
    lambda complexity, qmb, consented, initial: patient(
        complexity=complexity, qmb=qmb,
        consents=tuple(Consent(p, "active", day(5, 1)) for p in consented),
        episodes=patient().episodes if not initial else
        (dataclasses.replace(patient().episodes[0], start=day(1)),)),
    st.sampled_from([None, "low", "moderate", "high"]), st.sampled_from([None, True, False]),
    st.sets(st.sampled_from(["ccm", "complex_ccm", "pcm", "bhi", "cocm", "apcm"])),
    st.booleans())
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _chosen_score(decision, policy):
    from smart_app.rules.evaluate import _Option

    opts = []
    for p in decision.programs:
        for alt in p.alternatives:
            if alt.chosen:
                fam = RULES.families[p.program]
                req = len(set(fam.codes[alt.codes[0][0]].evidence))
                codes = tuple(c for c in p.codes)
                opts.append(_Option(p.program, codes, alt.minutes, alt.rate_total, (), (), req))
    return _score(policy, opts)


@FAST
@given(facts, st.lists(entry, max_size=8), entry, st.sampled_from(POLICIES))
def test_more_minutes_never_bill_less(f, entries, extra, policy):
    before = evaluate(f, entries, RULES, policy=policy)
    after = evaluate(f, [*entries, extra], RULES, policy=policy)
    # The policy's own measure of the month never drops when minutes are added ...
    assert _chosen_score(after, policy) >= _chosen_score(before, policy)
    # ... and with the default policy the minutes behind billed codes never drop either.
    if policy.strategy == "most_supported":
        assert sum(c.minutes for c in after.billed()) >= sum(c.minutes for c in before.billed())


@FAST
@given(facts, st.lists(entry, max_size=10), st.sampled_from(POLICIES))
def test_caps_exclusions_consent_and_no_double_count(f, entries, policy):
    d = evaluate(f, entries, RULES, policy=policy)
    codes = d.billed()
    names = [c.code for c in codes]
    assert len(names) == len(set(names))
    for c in codes:
        rule = RULES.code(c.code)
        assert 1 <= c.units <= rule.max_units
        for other in names:
            assert other not in EXCL.get(c.code, {}), (c.code, other)
        if rule.base_codes:
            assert any(b in names for b in rule.base_codes)
        fam = RULES.families[c.program]
        if "consent" in rule.evidence:
            assert any(k.program in fam.consent_programs and k.status == "active"
                       for k in f.consents)
    # No minute is counted twice: per time program, billed minutes <= logged minutes.
    for program in {RULES.families[c.program].time_program for c in codes}:
        logged = sum(e.minutes for e in entries if e.program == program)
        used = sum(c.minutes for c in codes if RULES.families[c.program].time_program == program)
        assert used <= logged


@FAST
@given(st.lists(entry, max_size=10))
def test_nothing_bills_without_consent(entries):
    d = evaluate(patient(consents=()), entries, RULES)
    assert {c.program for c in d.billed()} <= {"tcm"}


@FAST
@given(facts, st.lists(entry, max_size=8))
def test_deterministic(f, entries):
    assert evaluate(f, entries, RULES) == evaluate(f, list(entries), RULES)
    assert evaluate(f, entries, RULES).to_json() == evaluate(f, entries, RULES).to_json()
