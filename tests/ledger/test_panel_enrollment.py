"""The panel's enrollment status per row and its "could be offered" list, on SQLite and PostgreSQL: a declined or
not-a-candidate patient is not offered the program again, an enrolled one shows as enrolled."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.facts_source import cached_facts
from smart_app.billing.panel import panel_csv, snapshot_json
from smart_app.db import transaction
from smart_app.ledger.consents import ConsentInput, record_consent
from smart_app.ledger.enrollment import record_enrollment
from smart_app.ledger.records import MonthStatusRow
from smart_app.rules.evaluate import evaluate
from tests.ledger.conftest import NOW, NURSE, ORG, TZ, documented
from tests.ledger.test_panel import MONTH, RULES, add, panel, person, row


def enroll(factory: sessionmaker[Session], patient: str, program: str, kind: str, reason: str = "") -> None:
    with transaction(factory) as db:
        record_enrollment(db, ORG, patient, program, kind, on=date(2026, 11, 9), by=NURSE, reason=reason, now=NOW,
                          timezone=TZ)


def not_yet_consented(factory: sessionmaker[Session], patient: str, name: str) -> None:
    """A patient whose chart was opened this month: documented for every program but with no consent on file."""
    person(factory, patient, name, care_manager="Practitioner/cm-1", manager_name="Carla Manager")
    documented(factory, patient, set())
    with transaction(factory) as db:
        facts = cached_facts(db, ORG, patient, MONTH)[0]  # type: ignore[index]
        decision = evaluate(facts, [], RULES, month=MONTH)
        db.add(MonthStatusRow(organization_id=ORG, patient_id=patient, month=MONTH, eligible_programs=[],
                              decision=decision.to_json(), evaluated_at=NOW,
                              panel=snapshot_json(decision, RULES, "no entries", facts.consents)))


def offered(factory: sessionmaker[Session], **options: object) -> set[tuple[str, str, str]]:
    return {(o.patient_id, o.program, o.enrollment) for o in panel(factory, **options).outreach}


def test_each_row_shows_the_patients_enrollment_status_and_can_be_filtered_by_it(factory) -> None:
    add(factory, "ehr-consent", 25)  # documented with the EHR's CCM consent
    add(factory, "declined", 10, facts=False)
    enroll(factory, "declined", "ccm", "declined", reason="cost sharing")
    add(factory, "app-consent", 5, facts=False)
    with transaction(factory) as db:
        record_consent(db, ConsentInput(ORG, "app-consent", "ccm", "verbal", True, True, True, True,
                                        date(2026, 11, 2), NURSE), now=NOW, timezone=TZ)
    add(factory, "tcm", 5, program="tcm")
    result = panel(factory)
    assert {r.patient_id: r.enrollment for r in result.rows} == {
        "ehr-consent": "enrolled", "declined": "declined", "app-consent": "enrolled", "tcm": ""}
    assert [r.patient_id for r in panel(factory, enrollment="declined").rows] == ["declined"]
    csv_rows = panel_csv(result).splitlines()
    assert csv_rows[0].endswith(",Enrollment") and any(line.endswith(",declined") for line in csv_rows)


def test_a_declined_or_not_a_candidate_patient_is_not_offered_the_program_again(factory) -> None:
    not_yet_consented(factory, "new", "Nell New")
    not_yet_consented(factory, "said-no", "Sam Declined")
    before = offered(factory)
    assert ("new", "ccm", "none") in before and ("said-no", "ccm", "none") in before

    enroll(factory, "said-no", "ccm", "declined", reason="does not want monthly calls")
    enroll(factory, "said-no", "bhi", "not-candidate", reason="receives BHI elsewhere")
    enroll(factory, "new", "ccm", "offered")
    after = offered(factory)
    assert not {(p, prog) for p, prog, _ in after} & {("said-no", "ccm"), ("said-no", "bhi")}
    assert ("new", "ccm", "offered") in after
    assert offered(factory, program="ccm") == {("new", "ccm", "offered")}
    assert offered(factory, enrollment="offered") == {("new", "ccm", "offered")}

    # Once consent is recorded the patient is enrolled and no program is suggested from the panel.
    with transaction(factory) as db:
        record_consent(db, ConsentInput(ORG, "new", "ccm", "verbal", True, True, True, True, date(2026, 11, 12),
                                        NURSE), now=NOW, timezone=TZ)
    assert not {p for p, _, _ in offered(factory)} & {"new"}


def test_a_patient_enrolled_through_the_ehr_is_not_offered(factory) -> None:
    not_yet_consented(factory, "new", "Nell New")
    documented(factory, "ehr", {"ccm"})
    person(factory, "ehr", "Eve Enrolled")
    with transaction(factory) as db:
        facts = cached_facts(db, ORG, "ehr", MONTH)[0]  # type: ignore[index]
        decision = evaluate(facts, [], RULES, month=MONTH)
        db.add(MonthStatusRow(organization_id=ORG, patient_id="ehr", month=MONTH, eligible_programs=["ccm"],
                              decision=decision.to_json(), evaluated_at=NOW,
                              panel=snapshot_json(decision, RULES, "no entries", facts.consents)))
    assert {p for p, _, _ in offered(factory)} == {"new"}
    assert row(panel(factory), "ehr").enrollment == "enrolled"
