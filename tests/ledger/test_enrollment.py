"""Enrollment beyond consent on SQLite and PostgreSQL: offered, declined and not-a-candidate events are validated,
audited and covered by the chain; the status per program follows the latest step, and a consent makes the patient
enrolled."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import transaction
from smart_app.ledger.audit import ENROLLMENT_RECORDED, recent_events
from smart_app.ledger.consents import ConsentInput, consent_history, record_consent, withdraw_consent
from smart_app.ledger.coverage import verify
from smart_app.ledger.enrollment import (
    AlreadyEnrolled,
    InvalidEnrollment,
    Mark,
    app_consent_marks,
    app_marks_for,
    ehr_consent_marks,
    enrollment_history,
    enrollment_statuses,
    event_marks,
    program_status,
    record_enrollment,
)
from smart_app.ledger.records import EnrollmentRow
from smart_app.rules.facts import Consent
from smart_app.statuses import EnrollmentKind, EnrollmentStatus
from tests.ledger.conftest import NOW, NURSE, ORG, TZ

TODAY = date(2026, 11, 20)  # NOW in New York


def enroll(factory: sessionmaker[Session], kind: str, *, program: str = "ccm", on: date = date(2026, 11, 10),
           reason: str = "", patient: str = "pat-1", now=NOW):  # noqa: ANN001, ANN201
    with transaction(factory) as db:
        return record_enrollment(db, ORG, patient, program, kind, on=on, by=NURSE, reason=reason, now=now,
                                 timezone=TZ)


def consent(factory: sessionmaker[Session], program: str = "ccm", on: date = date(2026, 11, 12), now=NOW):  # noqa: ANN001, ANN201
    with transaction(factory) as db:
        return record_consent(db, ConsentInput(ORG, "pat-1", program, "verbal", True, True, True, True, on, NURSE),
                              now=now, timezone=TZ)


def status(factory: sessionmaker[Session], program: str = "ccm", ehr: tuple[Consent, ...] = ()):  # noqa: ANN201
    with factory() as db:
        marks = (event_marks(enrollment_history(db, ORG, "pat-1"))
                 + app_consent_marks(consent_history(db, ORG, "pat-1")) + ehr_consent_marks(ehr))
    return program_status(program, marks)


def test_a_decline_is_recorded_with_date_reason_and_who_and_audited(factory) -> None:
    made = enroll(factory, "declined", reason="  cost sharing  ")
    assert (made.kind, made.on, made.reason, made.recorded_by) == (EnrollmentKind.DECLINED, date(2026, 11, 10),
                                                                   "cost sharing", NURSE)
    got = status(factory)
    assert (got.status, got.on, got.reason, got.by, got.label) == (
        EnrollmentStatus.DECLINED, date(2026, 11, 10), "cost sharing", NURSE, "declined")
    assert not got.offered_consent
    assert status(factory, "bhi").status is EnrollmentStatus.NONE
    with transaction(factory) as db:
        events = [e for e in recent_events(db, 10) if e.action == ENROLLMENT_RECORDED]
        assert len(events) == 1 and events[0].actor == NURSE and events[0].detail["status"] == "declined"
    with transaction(factory) as db:
        assert verify(db).ok


def test_an_enrollment_row_edited_in_the_database_is_named(factory) -> None:
    made = enroll(factory, "not-candidate", reason="hospice")
    with transaction(factory) as db:
        db.execute(update(EnrollmentRow).where(EnrollmentRow.id == made.id).values(reason="moved away"))
    with transaction(factory) as db:
        report = verify(db)
    assert not report.ok
    assert {(p.table, p.row_id, p.kind) for p in report.problems if p.table} == {
        ("enrollment_events", made.id, "row-edited")}


@pytest.mark.parametrize(("program", "kind", "on", "reason", "said"), [
    ("ccm", "declined", date(2026, 11, 10), "", "Say why the patient declined"),
    ("ccm", "not-candidate", date(2026, 11, 10), "   ", "Say why the patient is not a candidate"),
    ("ccm", "declined", date(2026, 11, 25), "cost", "is in the future"),
    ("ccm", "declined", date(2010, 1, 1), "cost", "more than 10 years ago"),
    ("tcm", "declined", date(2026, 11, 10), "cost", "TCM) is not a time-based program"),
    ("xyz", "offered", date(2026, 11, 10), "", "Unknown program 'xyz'"),
    ("ccm", "enrolled", date(2026, 11, 10), "", "not an enrollment status"),
    ("ccm", "declined", date(2026, 11, 10), "cost\x00", "NUL character"),
    ("ccm", "declined", date(2026, 11, 10), "x" * 501, "the limit is 500"),
])
def test_what_cannot_be_recorded_says_why(factory, program, kind, on, reason, said) -> None:  # noqa: ANN001
    with pytest.raises(InvalidEnrollment, match=said.replace("(", r"\(").replace(")", r"\)")) as caught:
        enroll(factory, kind, program=program, on=on, reason=reason)
    assert caught.value.hint
    with factory() as db:
        assert enrollment_history(db, ORG, "pat-1") == []


def test_an_offer_needs_no_reason_and_a_later_decline_supersedes_it(factory) -> None:
    enroll(factory, "offered", on=date(2026, 11, 2))
    assert status(factory).status is EnrollmentStatus.OFFERED and status(factory).offered_consent
    enroll(factory, "declined", on=date(2026, 11, 5), reason="does not want phone calls")
    assert status(factory).status is EnrollmentStatus.DECLINED
    # Recorded later but dated earlier: the decline dated Nov 5 still stands.
    enroll(factory, "offered", on=date(2026, 11, 3), now=NOW + timedelta(minutes=5))
    assert status(factory).status is EnrollmentStatus.DECLINED


def test_consent_after_a_decline_makes_the_patient_enrolled_and_a_decline_is_refused_while_it_holds(factory) -> None:
    enroll(factory, "declined", reason="cost sharing")
    given = consent(factory, on=date(2026, 11, 12))
    got = status(factory)
    assert (got.status, got.on, got.source) == (EnrollmentStatus.ENROLLED, date(2026, 11, 12), "app")
    with pytest.raises(AlreadyEnrolled, match="record the withdrawal"):
        enroll(factory, "declined", on=TODAY, reason="changed mind")
    with transaction(factory) as db:
        withdraw_consent(db, ORG, given.id, by=NURSE, on=date(2026, 11, 15), note="", now=NOW, timezone=TZ)
    got = status(factory)
    assert (got.status, got.on) == (EnrollmentStatus.WITHDRAWN, date(2026, 11, 15))
    # Once withdrawn, a new decline can be recorded, and it is the status.
    enroll(factory, "declined", on=TODAY, reason="changed mind", now=NOW + timedelta(minutes=1))
    assert status(factory).status is EnrollmentStatus.DECLINED


def test_the_ehrs_consents_count_and_one_in_force_wins_over_a_later_step() -> None:
    ehr = ehr_consent_marks([Consent("bhi", "active", date(2026, 4, 9)), Consent("pcm", "inactive", date(2026, 3, 1)),
                             Consent("apcm", "rejected", date(2026, 2, 1)), Consent("cocm", "draft", date(2026, 2, 1))])
    statuses = {s.program: s for s in enrollment_statuses(["ccm", "pcm", "bhi", "cocm", "apcm"], ehr)}
    assert {p: s.status.value for p, s in statuses.items()} == {
        "ccm": "none", "pcm": "withdrawn", "bhi": "enrolled", "cocm": "none", "apcm": "declined"}
    assert statuses["bhi"].by == "in the EHR" and statuses["bhi"].source == "EHR"
    later = Mark("bhi", EnrollmentStatus.NOT_CANDIDATE, date(2026, 11, 1), NURSE, "app", NOW, "hospice")
    got = program_status("bhi", [*ehr, later])
    assert got.status is EnrollmentStatus.ENROLLED
    assert "Not a candidate on 2026-11-01, but the consent in the EHR is still in force" in got.note


def test_many_patients_are_read_at_once(factory) -> None:
    enroll(factory, "declined", reason="cost", patient="pat-1")
    enroll(factory, "not-candidate", program="bhi", reason="receives BHI elsewhere", patient="pat-2")
    consent(factory, program="pcm")
    with factory() as db:
        marks = app_marks_for(db, ORG, ["pat-1", "pat-2", "pat-3"])
    assert set(marks) == {"pat-1", "pat-2"}
    assert program_status("ccm", marks["pat-1"]).status is EnrollmentStatus.DECLINED
    assert program_status("pcm", marks["pat-1"]).status is EnrollmentStatus.ENROLLED
    assert program_status("bhi", marks["pat-2"]).status is EnrollmentStatus.NOT_CANDIDATE


def test_the_database_refuses_a_kind_that_is_not_an_enrollment_event(factory) -> None:
    made = enroll(factory, "offered")
    # Plain SQL, past the column's enum type: the CHECK constraint of migration 0016 refuses it.
    with pytest.raises(IntegrityError), transaction(factory) as db:
        db.execute(text("INSERT INTO enrollment_events (id, organization_id, patient_id, program, kind, on_date, "
                        "reason, recorded_by, recorded_at) VALUES ('forged', :org, 'pat-1', 'ccm', 'enrolled', "
                        ":on, '', :by, :at)"), {"org": ORG, "on": date(2026, 11, 1), "by": NURSE, "at": NOW})
    with factory() as db:
        assert [e.id for e in enrollment_history(db, ORG, "pat-1")] == [made.id]
