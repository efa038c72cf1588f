"""The biller's approval never writes back a claim before its date of service.

Under the default `service_date = "month-end"` a month's claim is dated the last day of the month, so it is
approved once the month is over; `"threshold-met"` dates it the day its minutes were met (CMS's CCM FAQ
allows billing then). Run on both databases through `billing.review.approve`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from smart_app.billing.claims import store_claim
from smart_app.billing.plan import plan_for
from smart_app.billing.review import Reviewer, ReviewRefused, SelfApprovalRefused, approve
from smart_app.db import transaction
from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.launch.organizations import Organization
from smart_app.ledger.entries import record_entry
from smart_app.ledger.values import EntryInput
from tests.billing.claims import ccm_claim
from tests.billing.test_outbox import ORG, sessions  # noqa: F401

CLINIC = Organization(id=ORG, name="Outbox Clinic", issuer="http://127.0.0.1:9/fhir", client_id="app",
                      timezone="America/New_York")
BILLER = Reviewer("Practitioner/dr-1", "Pat Kowalski")


def november_claim(service_date: date):  # noqa: ANN201 - a ProposedClaim
    claim = ccm_claim()
    lines = tuple(replace(line, service_date=service_date) for line in claim.lines)
    return replace(claim, organization_id=ORG, month="2026-11", lines=lines)


def test_a_month_end_claim_waits_for_the_end_of_the_month(sessions) -> None:  # noqa: F811
    with transaction(sessions) as db:
        _, row = store_claim(db, november_claim(date(2026, 11, 30)))
        claim_id = row.id
    plan = plan_for(EhrCapabilities())
    # 03:30 UTC on Nov 30 is still Nov 29 in New York, the organization's timezone.
    with transaction(sessions) as db, pytest.raises(ReviewRefused, match="Nov 30, 2026, after today") as refused:
        approve(db, CLINIC, claim_id, by=BILLER, note="", plan=plan, now=datetime(2026, 11, 30, 3, 30, tzinfo=UTC))
    assert 'service_date = "threshold-met"' in refused.value.hint
    with transaction(sessions) as db:
        done = approve(db, CLINIC, claim_id, by=BILLER, note="", plan=plan,
                       now=datetime(2026, 11, 30, 5, 30, tzinfo=UTC))
    assert done.claim.status == "approved"


def test_a_claim_dated_when_its_minutes_were_met_is_approved_at_once(sessions) -> None:  # noqa: F811
    with transaction(sessions) as db:
        _, row = store_claim(db, november_claim(date(2026, 11, 12)))
        done = approve(db, CLINIC, row.id, by=BILLER, note="", plan=plan_for(EhrCapabilities()),
                       now=datetime(2026, 11, 12, 18, 0, tzinfo=UTC))
    assert done.claim.status == "approved"


def test_nobody_approves_a_claim_with_their_own_minutes_unless_the_organization_allows_it(sessions) -> None:  # noqa: F811
    nurse = Reviewer("Practitioner/rn-biller", "Rita Nurse")
    with transaction(sessions) as db:
        own = record_entry(db, EntryInput(ORG, "pat-1", nurse.reference, "clinical-staff", "ccm", "patient-call",
                                          datetime(2026, 11, 10, 15, 0, tzinfo=UTC), 20),
                           timezone="America/New_York", now=datetime(2026, 11, 10, 16, 0, tzinfo=UTC)).entries[0]
        claim = november_claim(date(2026, 11, 12))
        claim = replace(claim, lines=(replace(claim.lines[0], entry_ids=(own.id,)),))
        _, row = store_claim(db, claim)
    plan, when = plan_for(EhrCapabilities()), datetime(2026, 11, 12, 18, 0, tzinfo=UTC)
    with transaction(sessions) as db, pytest.raises(SelfApprovalRefused, match="carries 20 minutes you recorded"):
        approve(db, CLINIC, row.id, by=nurse, note="", plan=plan, now=when)
    one_person_practice = replace(CLINIC, allow_self_approval=True)
    with transaction(sessions) as db:
        done = approve(db, one_person_practice, row.id, by=nurse, note="", plan=plan, now=when)
    assert done.claim.status == "approved" and done.claim.reviewer == "Rita Nurse"
