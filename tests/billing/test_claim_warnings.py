"""Warnings that mean something: only about the codes on the claim, each once, in plain words; a claim whose own
evidence fails cannot be approved (the button says why, and the POST refuses it too)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from smart_app.billing.proposal import approval_blockers, claim_warnings
from smart_app.rules import Discharge, TimeEntry, evaluate
from smart_app.rules.loader import default_rule_set
from tests.billing.claims import ccm_claim
from tests.rules.conftest import patient
from tests.stack import Stack, biller_headers, new_browser
from tests.test_capture_api import api, earlier_today, launch

RULES = default_rule_set("medicare", 2026)
# What a biller should never read: input field names, internal program ids, Python reprs.
JARGON = re.compile(r"patient\.|time\.|'[a-z_]+/[a-z_]+'|\(\(|program '|undetermined:")


def _ccm_month(**facts: object) -> tuple:
    """A month with CCM billable (45 minutes) and, unless told otherwise, no CoCM episode and no QMB status."""
    entries = [TimeEntry("ccm", 25, "clinical-staff", dt.date(2026, 3, 10), "a"),
               TimeEntry("ccm", 20, "clinical-staff", dt.date(2026, 3, 12), "b")]
    return evaluate(patient(**{"episodes": (), "qmb": None, **facts}), entries, RULES), entries


def test_a_ccm_claim_carries_no_warning_about_other_programs() -> None:
    decision, _ = _ccm_month()
    assert decision.program("ccm").codes
    # The evaluator does see the missing CoCM episode and QMB status, for programs not on this claim.
    assert "CoCM episode" in " ".join(r.reason for p in decision.programs for r in p.reasons)
    warnings = claim_warnings(decision)
    text = " | ".join(warnings)
    assert "CoCM" not in text and "QMB" not in text and "Qualified Medicare" not in text
    assert len(warnings) == len(set(warnings))
    assert not JARGON.search(text), text


def test_each_warning_once_and_in_plain_words() -> None:
    # No consent on file: nothing is billable at 60 minutes, and the claim says why.
    entries = [TimeEntry("ccm", 30, "clinical-staff", dt.date(2026, 3, d), f"e{d}") for d in (3, 4)]
    decision = evaluate(patient(consents=(), care_plans=()), entries, RULES)
    assert not decision.billed()
    nothing = claim_warnings(decision)
    # Nothing billable: the claim says why, for the program with minutes, once, without field names.
    assert any("no consent on file" in w for w in nothing), nothing
    assert len(nothing) == len(set(nothing))
    assert not JARGON.search(" | ".join(nothing)), nothing
    # 50 minutes bill 99490 + 99439; the billing practitioner's 30 alone would bill 99491: one picked, one named.
    both = [TimeEntry("ccm", 30, "billing-practitioner", dt.date(2026, 3, 3), "bp"),
            TimeEntry("ccm", 20, "clinical-staff", dt.date(2026, 3, 4), "cs")]
    warnings = claim_warnings(evaluate(patient(complexity=None), both, RULES))
    also = [w for w in warnings if "also billable as" in w]
    assert also == ["Chronic care management (non-complex): also billable as 99491 (the rules picked 99490 + 99439)"]
    assert not JARGON.search(" | ".join(warnings)), warnings


def test_every_reason_the_evaluator_gives_is_free_of_field_names() -> None:
    bare = evaluate(patient(conditions=(), consents=(), episodes=(), qmb=None, initiating_visit=None, complexity=None,
                            rating_scales=(), care_plans=()), [], RULES)
    text = " | ".join(f"{r.reason} {r.lift}" for p in bare.programs for r in p.reasons)
    assert not JARGON.search(text), JARGON.search(text)


def test_a_tcm_claim_without_medication_reconciliation_cannot_be_approved() -> None:
    discharge = Discharge(dt.date(2026, 3, 6), dt.date(2026, 3, 9), dt.date(2026, 3, 12), "high")
    decision = evaluate(patient(discharges=(discharge,)), [], RULES)
    assert decision.program("tcm").codes
    claim = dataclasses.replace(ccm_claim(), decision=decision.to_json())
    blockers = approval_blockers(claim)
    assert any("medication reconciliation" in b for b in blockers), blockers
    recorded = evaluate(patient(discharges=(dataclasses.replace(
        discharge, medication_reconciliation_date=dt.date(2026, 3, 11)),)), [], RULES)
    assert approval_blockers(dataclasses.replace(ccm_claim(), decision=recorded.to_json())) == ()


def test_a_claim_without_diagnoses_cannot_be_approved() -> None:
    assert approval_blockers(ccm_claim()) == ()
    assert any("No diagnosis" in b for b in approval_blockers(ccm_claim(diagnoses=())))


@pytest.mark.usefixtures("stack")
def test_the_biller_page_disables_approval_and_the_post_refuses_it(stack: Stack) -> None:
    # The EHR loses the TCM patient's medication reconciliation (as if it were entered in error): the TCM
    # claim's own evidence then fails, while the CCM claim beside it holds.
    assert stack.ehr is not None
    stack.ehr.store.delete("Procedure", "tcm-recent-discharge-proc-medrec")
    nurse, _ = launch(stack, "tcm-recent-discharge", user="pr-nurse")
    ccm, _ = launch(stack, "ccm-two-chronic", user="pr-nurse")
    date, time = earlier_today(500)
    made = api(stack, "POST", "/entries", ccm, json={
        "program": "ccm", "activity": "record-review", "date": date, "time": time, "minutes": 25})
    assert made.status_code == 201, made.text
    assert nurse
    biller = biller_headers(stack)
    month = f"{dt.datetime.now(dt.UTC):%Y-%m}"
    run = api(stack, "POST", "/billing/rollup", biller, json={"month": month, "source": "ehr"})
    assert run.status_code == 200, run.text
    with new_browser() as browser:
        page = browser.get(f"{stack.app_url}/billing", params={"month": month}, headers=biller).text
    articles = dict(re.findall(r'<article class="claim[^"]*"[^>]*data-patient="([^"]+)">(.*?)</article>', page, re.S))
    tcm, ok = articles["tcm-recent-discharge"], articles["ccm-two-chronic"]
    assert "Cannot be approved yet" in tcm and "medication reconciliation" in tcm.lower(), tcm[:3000]
    assert re.search(r"<button[^>]*disabled[^>]*>Approve and send</button>", tcm)
    claim_id = re.search(r'id="blocked-([^"]+)"', tcm).group(1)
    refused = api(stack, "POST", f"/claims/{claim_id}/approve", biller, json={"note": "try anyway"})
    assert refused.status_code in (409, 422), refused.text
    assert "cannot be approved" in refused.text
    assert "Cannot be approved yet" not in ok and 'data-api="/api/v1/claims/' in ok
    for article in articles.values():
        warnings = " | ".join(re.findall(r"<li>(.*?)</li>", article))
        assert "CoCM episode" not in warnings and "patient.qmb" not in warnings, warnings
