"""The care plan as data: templates beside the rules, drafts by the care team, signatures by the billing
practitioner only, every version kept and inside the audit chain (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from smart_app.access.roles import TimeRole
from smart_app.db import transaction
from smart_app.errors import ConfigError
from smart_app.ledger.audit import CARE_PLAN_DRAFTED, CARE_PLAN_ESTABLISHED
from smart_app.ledger.care_plans import (
    InvalidCarePlan,
    SignatureRefused,
    add_months,
    establish,
    in_force,
    load_templates,
    parse_content,
    plan_versions,
    review_due,
    save_draft,
    seed,
    suggested,
)
from smart_app.ledger.coverage import verify
from smart_app.ledger.records import AuditEventRow
from smart_app.rules.facts import Condition
from smart_app.statuses import CarePlanStatus
from tests.ledger.conftest import DOCTOR, ICD, NOW, NURSE, ORG

DIABETES = Condition("E11.9", ICD, "active", id="c1", display="Type 2 diabetes mellitus without complications")
HEART = Condition("I50.22", ICD, "active", id="c2", display="Chronic systolic heart failure")


def test_the_five_templates_are_data_and_each_seeds_a_complete_plan() -> None:
    templates = load_templates()
    assert set(templates) == {"diabetes", "heart-failure", "copd", "hypertension", "depression"}
    plan = seed(templates["diabetes"], [DIABETES, HEART], date(2026, 12, 6))
    assert plan.problems == (DIABETES.display, HEART.display)
    assert plan.goals[0].due == date(2027, 3, 6) and plan.goals[0].target
    assert all(i.responsible for i in plan.interventions) and plan.review_every_months == 12
    assert suggested(templates, [Condition("I10", ICD, "resolved"), HEART]) == "heart-failure"
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


def test_a_broken_template_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("key: x\ntitle: X\ngoals: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="incomplete"):
        load_templates(tmp_path)


def test_every_element_is_required() -> None:
    content = seed(load_templates()["copd"], [], date(2026, 12, 6)).to_json()
    for name, empty in (("problems", []), ("goals", []), ("interventions", []), ("prognosis", " "),
                        ("review_every_months", 0)):
        with pytest.raises(InvalidCarePlan):
            parse_content({**content, name: empty})
    with pytest.raises(InvalidCarePlan, match="date"):
        goal = {**content["goals"][0], "due": "soon"}
        parse_content({**content, "goals": [goal]})


def test_staff_draft_the_billing_practitioner_signs_and_every_version_is_kept(factory: sessionmaker[Session]) -> None:
    content = seed(load_templates()["diabetes"], [DIABETES], date(2026, 11, 20)).to_json()
    with transaction(factory) as db:
        first = save_draft(db, ORG, "pat-1", content, template="diabetes", by=NURSE, now=NOW)
    with transaction(factory) as db:
        second = save_draft(db, ORG, "pat-1", {**content, "prognosis": "Fair."}, template="diabetes", by=NURSE,
                            now=NOW)
    assert (first.number, second.number, second.plan_id) == (1, 2, first.plan_id)
    with transaction(factory) as db, pytest.raises(SignatureRefused, match="billing practitioner"):
        establish(db, ORG, "pat-1", second.id, by=NURSE, time_role=TimeRole.CARE_MANAGER, on=date(2026, 11, 20))
    with transaction(factory) as db, pytest.raises(InvalidCarePlan, match="not the latest"):
        establish(db, ORG, "pat-1", first.id, by=DOCTOR, time_role=TimeRole.BILLING_PRACTITIONER,
                  on=date(2026, 11, 20))
    with transaction(factory) as db:
        signed = establish(db, ORG, "pat-1", second.id, by=DOCTOR, time_role=TimeRole.BILLING_PRACTITIONER,
                           on=date(2026, 11, 20), now=NOW)
    assert (signed.number, signed.status, signed.written_by) == (3, CarePlanStatus.ESTABLISHED, DOCTOR)
    assert signed.content.prognosis == "Fair." and signed.review_due == date(2027, 11, 20)
    with transaction(factory) as db, pytest.raises(InvalidCarePlan, match="already established"):
        establish(db, ORG, "pat-1", signed.id, by=DOCTOR, time_role=TimeRole.BILLING_PRACTITIONER,
                  on=date(2026, 11, 21))
    with transaction(factory) as db:
        versions = plan_versions(db, ORG, "pat-1")
        actions = db.scalars(select(AuditEventRow.action).order_by(AuditEventRow.seq)).all()
    assert [v.number for v in versions] == [3, 2, 1]
    assert actions == [CARE_PLAN_DRAFTED, CARE_PLAN_DRAFTED, CARE_PLAN_ESTABLISHED]
    assert in_force(versions, date(2026, 11, 19)) is None and in_force(versions, date(2026, 11, 30)) == signed
    assert review_due(versions, date(2026, 12, 1)) == date(2027, 11, 20)
    with transaction(factory) as db:
        assert verify(db).ok


def test_a_version_changed_outside_the_app_is_named_by_verify(factory: sessionmaker[Session]) -> None:
    content = seed(load_templates()["hypertension"], [], date(2026, 11, 20)).to_json()
    with transaction(factory) as db:
        draft = save_draft(db, ORG, "pat-2", content, template="hypertension", by=NURSE, now=NOW)
    with transaction(factory) as db:
        db.execute(text("UPDATE care_plan_versions SET written_by = 'Practitioner/md-1' WHERE id = :id"),
                   {"id": draft.id})
    with transaction(factory) as db:
        report = verify(db)
    assert not report.ok
    assert [(p.kind, p.table, p.row_id) for p in report.problems] == [("row-edited", "care_plan_versions", draft.id)]


def test_the_established_plan_counts_like_an_ehr_careplan_and_the_claim_names_its_version() -> None:
    from smart_app.billing.proposal import PatientInfo, propose_claim
    from smart_app.ledger.care_plans import CarePlanVersion, with_care_plans
    from smart_app.ledger.facts_merge import time_entries
    from smart_app.rules import evaluate
    from smart_app.rules.loader import default_rule_set
    from tests.billing.claims import entry
    from tests.billing.test_proposal_audit import ORG as CLAIM_ORG
    from tests.billing.test_proposal_audit import at
    from tests.rules.conftest import day, patient

    rules = default_rule_set("medicare", 2026)
    content = seed(load_templates()["diabetes"], [], day(2))
    facts = patient(care_plans=())
    entries = (entry(start=at(3), minutes=25),)

    def version(number: int, status: CarePlanStatus, on: date | None) -> CarePlanVersion:
        return CarePlanVersion(f"v{number}", "plan", ORG, "pat-1", number, status, "diabetes", content, DOCTOR, NOW,
                               on, add_months(on, 12) if on else None)

    def warned(merged):  # noqa: ANN001, ANN202
        ccm = evaluate(merged, time_entries(entries, "UTC"), rules, month="2026-03").program("ccm")
        return [w for w in ccm.warnings if "care plan" in w]

    assert warned(facts)
    # A draft is not a plan; one established after the month does not count for it either.
    assert warned(with_care_plans(facts, [version(1, CarePlanStatus.DRAFT, None),
                                          version(2, CarePlanStatus.ESTABLISHED, date(2026, 4, 2))]))
    merged = with_care_plans(facts, [version(1, CarePlanStatus.DRAFT, None),
                                     version(2, CarePlanStatus.ESTABLISHED, day(4)),
                                     version(4, CarePlanStatus.ESTABLISHED, day(20))])
    assert not warned(merged)
    decision = evaluate(merged, time_entries(entries, "UTC"), rules, month="2026-03")
    claim = propose_claim(decision, merged, entries, CLAIM_ORG, "pat-1", PatientInfo("Ada"), today=day(31))
    assert "care plan: care plan version 4, established 2026-03-20 in the app" in claim.evidence
