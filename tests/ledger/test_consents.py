"""Consent capture and chronicity attestations on SQLite and PostgreSQL: validation, duplicates, withdrawal,
what the evaluator gets, write-back marks, and the latest attestation winning."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import transaction
from smart_app.ledger.attestations import InvalidAttestation, attestations_for, record_attestation
from smart_app.ledger.consents import (
    AlreadyWithdrawn,
    ConsentConflict,
    ConsentInput,
    InvalidConsent,
    active_consents,
    consent_history,
    facts_consents,
    mark_writeback,
    record_consent,
    withdraw_consent,
)
from smart_app.ledger.errors import LedgerError, LedgerNotFound
from smart_app.ledger.records import ConsentRow
from smart_app.rules import RuleSet, TimeEntry, default_rule_set, evaluate
from smart_app.rules.facts import Attestation, Consent, FactSource
from tests.ledger.conftest import DOCTOR, NOW, NURSE, ORG, TZ
from tests.rules.conftest import billed, patient, reasons_text


def consent_input(**changes: object) -> ConsentInput:
    """A complete verbal CCM consent given on Nov 3, 2026, with overrides."""
    base = ConsentInput(organization_id=ORG, patient_id="pat-1", program="ccm", method="verbal",
                        explained_availability=True, explained_cost_sharing=True, explained_right_to_stop=True,
                        explained_one_practitioner=True, obtained_on=date(2026, 11, 3), obtained_by=NURSE,
                        note="explained by phone")
    return replace(base, **changes)  # type: ignore[arg-type]


def record(factory: sessionmaker[Session], now: datetime = NOW, **changes: object):  # noqa: ANN201
    with transaction(factory) as db:
        return record_consent(db, consent_input(**changes), now=now, timezone=TZ)


def withdraw(factory: sessionmaker[Session], consent_id: str, on: date, now: datetime = NOW, **kw: object):  # noqa: ANN201
    with transaction(factory) as db:
        return withdraw_consent(db, ORG, consent_id, by=kw.pop("by", NURSE), on=on,  # type: ignore[arg-type]
                                note=kw.pop("note", "patient called to stop"), now=now, timezone=TZ, **kw)


def history(factory: sessionmaker[Session], patient_id: str = "pat-1"):  # noqa: ANN201
    with factory() as db:
        return consent_history(db, ORG, patient_id)


def count_rows(factory: sessionmaker[Session]) -> int:
    with factory() as db:
        return db.scalar(select(func.count()).select_from(ConsentRow)) or 0


# -- recording ---------------------------------------------------------------------------------------------

def test_a_complete_consent_is_recorded_pending_write_back(factory) -> None:
    stored = record(factory)
    assert (stored.kind, stored.program, stored.method, stored.obtained_on) == ("consent", "ccm", "verbal",
                                                                                date(2026, 11, 3))
    assert stored.obtained_by == NURSE and stored.note == "explained by phone" and stored.recorded_at == NOW
    assert (stored.writeback_status, stored.writeback_detail, stored.fhir_id) == ("pending", "", None)
    assert stored.withdraws_id is None and stored.withdrawn_by is None and stored.active
    assert all((stored.explained_availability, stored.explained_cost_sharing, stored.explained_right_to_stop,
                stored.explained_one_practitioner))
    with factory() as db:
        assert active_consents(db, ORG, "pat-1") == [stored]
        assert active_consents(db, ORG, "pat-2") == []


@pytest.mark.parametrize(("missing", "message"), [
    ({"explained_availability": False}, "The patient was not told that CCM is available to them; explain it "
                                        "before recording consent."),
    ({"explained_cost_sharing": False}, "The patient was not told that cost sharing (deductible and "
                                        "coinsurance) applies; explain it before recording consent."),
    ({"explained_right_to_stop": False}, "not told that they may stop at any time (effective the end of the "
                                         "month); explain it"),
    ({"explained_one_practitioner": False}, "not told that only one practitioner can bill CCM in a month"),
])
def test_each_unexplained_element_is_named(factory, missing, message) -> None:
    with pytest.raises(InvalidConsent) as caught:
        record(factory, **missing)
    assert message in caught.value.message
    assert caught.value.missing == tuple(missing)
    assert "Explain each point" in caught.value.hint and caught.value.status_code == 422
    assert count_rows(factory) == 0


def test_several_unexplained_elements_are_all_named(factory) -> None:
    with pytest.raises(InvalidConsent) as caught:
        record(factory, program="bhi", explained_cost_sharing=False, explained_one_practitioner=False)
    assert caught.value.message == (
        "The patient was not told that cost sharing (deductible and coinsurance) applies or that only one "
        "practitioner can bill BHI in a month; explain these before recording consent.")
    assert caught.value.missing == ("explained_cost_sharing", "explained_one_practitioner")


@pytest.mark.parametrize(("changes", "message"), [
    ({"program": "tcm"}, "Transitional care management (TCM) needs no consent."),
    ({"program": "rpm"}, "Unknown program 'rpm'."),
    ({"method": "implied"}, "Unknown consent method 'implied'."),
    ({"obtained_on": date(2026, 11, 22)}, "The date consent was obtained, Nov 22, 2026, is in the future."),
    ({"obtained_on": date(2015, 11, 3)}, "Nov 3, 2015, is more than 10 years ago."),
    ({"obtained_on": datetime(2026, 11, 3, 9, 0, tzinfo=UTC)}, "not a calendar date"),
    ({"obtained_by": "Patient/pat-1"}, "is not a Practitioner or PractitionerRole reference"),
    ({"note": "x" * 4001}, "4001 characters long"),
    ({"patient_id": ""}, "names no organization or patient"),
])
def test_invalid_consents_are_refused_with_a_clear_message(factory, changes, message) -> None:
    with pytest.raises(LedgerError) as caught:
        record(factory, **changes)
    assert message in caught.value.message and caught.value.hint
    assert count_rows(factory) == 0


def test_today_is_judged_on_the_organizations_calendar(factory) -> None:
    # 2026-11-21 02:00 UTC is still Nov 20 in New York: Nov 21 is in the future there, not in Tokyo.
    late_evening = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    with pytest.raises(InvalidConsent, match="in the future"):
        record(factory, now=late_evening, obtained_on=date(2026, 11, 21))
    with transaction(factory) as db:
        stored = record_consent(db, consent_input(obtained_on=date(2026, 11, 21)), now=late_evening,
                                timezone="Asia/Tokyo")
    assert stored.obtained_on == date(2026, 11, 21)


def test_a_second_active_consent_for_the_program_is_refused(factory) -> None:
    first = record(factory)
    with pytest.raises(ConsentConflict) as caught:
        record(factory, obtained_on=date(2026, 11, 10), method="written")
    assert caught.value.status_code == 409
    assert "already consented to CCM on Nov 3, 2026" in caught.value.message
    assert caught.value.existing == first
    assert "record the withdrawal first" in caught.value.hint
    # Another program, or another patient, is a separate consent.
    record(factory, program="bhi")
    record(factory, patient_id="pat-2")
    with factory() as db:
        assert [c.program for c in active_consents(db, ORG, "pat-1")] == ["ccm", "bhi"]
    assert count_rows(factory) == 3


def test_concurrent_duplicates_record_one_consent(factory) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            record(factory)
            outcomes.append("ok")
        except ConsentConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["ok"]
    assert count_rows(factory) == 1


# -- withdrawal --------------------------------------------------------------------------------------------

def test_withdrawal_is_a_new_row_and_ends_the_active_consent(factory) -> None:
    consent = record(factory, obtained_on=date(2026, 2, 3))
    stopped = withdraw(factory, consent.id, date(2026, 11, 10), method="written")
    assert (stopped.kind, stopped.withdraws_id, stopped.program, stopped.patient_id) == (
        "withdrawal", consent.id, "ccm", "pat-1")
    assert stopped.obtained_on == date(2026, 11, 10) and stopped.last_covered_day == date(2026, 11, 30)
    assert stopped.writeback_status == "pending" and stopped.method == "written" and not stopped.active
    rows = history(factory)
    assert [r.kind for r in rows] == ["consent", "withdrawal"]
    assert rows[0].withdrawn_by == stopped.id and not rows[0].active
    assert rows[0].obtained_on == date(2026, 2, 3)  # the consent row itself is unchanged
    with factory() as db:
        assert active_consents(db, ORG, "pat-1") == []
    # Once withdrawn, a new consent may be recorded.
    again = record(factory, obtained_on=date(2026, 11, 20))
    with factory() as db:
        assert active_consents(db, ORG, "pat-1") == [again]


def test_withdrawal_refusals(factory) -> None:
    consent = record(factory)
    with pytest.raises(InvalidConsent, match="before the consent itself"):
        withdraw(factory, consent.id, date(2026, 11, 2))
    with pytest.raises(InvalidConsent, match="in the future"):
        withdraw(factory, consent.id, date(2026, 11, 25))
    with pytest.raises(InvalidConsent, match="not a Practitioner"):
        withdraw(factory, consent.id, date(2026, 11, 10), by="someone")
    with pytest.raises(LedgerNotFound):
        withdraw(factory, "no-such-consent", date(2026, 11, 10))
    stopped = withdraw(factory, consent.id, date(2026, 11, 10))
    with pytest.raises(AlreadyWithdrawn) as caught:
        withdraw(factory, consent.id, date(2026, 11, 12))
    assert "already withdrawn on Nov 10, 2026" in caught.value.message and caught.value.existing == stopped
    with pytest.raises(InvalidConsent, match="records a withdrawal"):
        withdraw(factory, stopped.id, date(2026, 11, 12))
    with transaction(factory) as db, pytest.raises(LedgerNotFound):
        withdraw_consent(db, "another-org", consent.id, by=NURSE, on=date(2026, 11, 12), note="", now=NOW)


# -- what the evaluator gets -------------------------------------------------------------------------------

def test_facts_date_a_withdrawal_from_the_first_of_the_next_month(factory) -> None:
    consent = record(factory, obtained_on=date(2026, 2, 3))
    stopped = withdraw(factory, consent.id, date(2026, 3, 10))
    assert facts_consents(history(factory)) == (
        Consent("ccm", "active", date(2026, 2, 3), consent.id, FactSource.APP),
        Consent("ccm", "inactive", date(2026, 4, 1), stopped.id, FactSource.APP),
    )


def test_a_consent_after_a_withdrawal_starts_again(factory) -> None:
    consent = record(factory, obtained_on=date(2026, 2, 3))
    stopped = withdraw(factory, consent.id, date(2026, 3, 10), now=NOW)
    again = record(factory, obtained_on=date(2026, 5, 4), now=NOW + timedelta(minutes=1))
    assert [(c.status, c.date, c.id) for c in facts_consents(history(factory))] == [
        ("active", date(2026, 2, 3), consent.id), ("inactive", date(2026, 4, 1), stopped.id),
        ("active", date(2026, 5, 4), again.id)]


def test_a_withdrawal_reversed_within_its_month_never_took_effect(factory) -> None:
    consent = record(factory, obtained_on=date(2026, 2, 3))
    withdraw(factory, consent.id, date(2026, 3, 10), now=NOW)
    again = record(factory, obtained_on=date(2026, 3, 20), now=NOW + timedelta(minutes=1))
    assert [(c.status, c.id) for c in facts_consents(history(factory))] == [("active", consent.id),
                                                                            ("active", again.id)]


def test_re_consent_on_the_day_a_withdrawal_takes_effect_sorts_last(factory) -> None:
    consent = record(factory, obtained_on=date(2026, 2, 3))
    withdraw(factory, consent.id, date(2026, 3, 10), now=NOW)
    record(factory, obtained_on=date(2026, 4, 1), now=NOW + timedelta(minutes=1))
    assert [c.status for c in facts_consents(history(factory))] == ["active", "inactive", "active"]


def test_the_evaluator_bills_the_withdrawal_month_and_not_the_next(factory) -> None:
    rules: RuleSet = default_rule_set("medicare", 2026)
    consent = record(factory, obtained_on=date(2026, 1, 5))
    withdraw(factory, consent.id, date(2026, 3, 10))
    facts = patient(complexity="low", consents=facts_consents(history(factory)))
    march = evaluate(facts, [TimeEntry("ccm", 25, "clinical-staff", date(2026, 3, 20))], rules, month="2026-03")
    assert billed(march, "ccm") == {"99490": 1}
    april = evaluate(facts, [TimeEntry("ccm", 25, "clinical-staff", date(2026, 4, 20))], rules, month="2026-04")
    assert billed(april, "ccm") == {}
    assert "'inactive'" in reasons_text(april, "ccm")


def test_history_filters_by_program_and_patient(factory) -> None:
    record(factory)
    record(factory, program="bhi")
    record(factory, patient_id="pat-2")
    with factory() as db:
        assert [r.program for r in consent_history(db, ORG, "pat-1", "bhi")] == ["bhi"]
        assert len(consent_history(db, ORG, "pat-1")) == 2
        assert consent_history(db, "another-org", "pat-1") == []


# -- write-back marks --------------------------------------------------------------------------------------

def test_mark_writeback_keeps_a_known_fhir_id(factory) -> None:
    consent = record(factory)
    with transaction(factory) as db:
        written = mark_writeback(db, consent.id, "written", "Written to the EHR as Consent/77.", "77")
    assert (written.writeback_status, written.fhir_id) == ("written", "77")
    with transaction(factory) as db:
        again = mark_writeback(db, consent.id, "failed", "refused")
    assert (again.writeback_status, again.writeback_detail, again.fhir_id) == ("failed", "refused", "77")
    assert history(factory)[0].writeback_status == "failed"
    with transaction(factory) as db, pytest.raises(ValueError, match="not one of"):
        mark_writeback(db, consent.id, "done", "")
    with transaction(factory) as db, pytest.raises(LedgerNotFound):
        mark_writeback(db, "nope", "written", "")


# -- attestations ------------------------------------------------------------------------------------------

def attest(factory: sessionmaker[Session], condition_id: str, chronic: bool, at: datetime, **kw: object):  # noqa: ANN201
    with transaction(factory) as db:
        return record_attestation(db, ORG, "pat-1", condition_id, kw.pop("code", "J45.909"), chronic,
                                  kw.pop("by", DOCTOR), now=at, **kw)  # type: ignore[arg-type]


def test_the_latest_attestation_per_condition_wins(factory) -> None:
    stored = attest(factory, "cond-asthma", True, datetime(2026, 11, 2, 15, 0, tzinfo=UTC), note="on inhalers")
    assert (stored.condition_id, stored.code, stored.chronic, stored.attested_by, stored.note) == (
        "cond-asthma", "J45.909", True, DOCTOR, "on inhalers")
    attest(factory, "cond-asthma", False, datetime(2026, 11, 9, 15, 0, tzinfo=UTC), by=NURSE)
    attest(factory, "cond-snomed", True, datetime(2026, 11, 5, 15, 0, tzinfo=UTC), code="")
    with factory() as db:
        found = attestations_for(db, ORG, "pat-1", timezone=TZ)
        assert set(found) == {
            Attestation(chronic=False, by=NURSE, date=date(2026, 11, 9), condition_id="cond-asthma", code="J45.909"),
            Attestation(chronic=True, by=DOCTOR, date=date(2026, 11, 5), condition_id="cond-snomed", code=None)}
        # As of an earlier day, the earlier statement is the latest one.
        earlier = attestations_for(db, ORG, "pat-1", as_of=date(2026, 11, 6), timezone=TZ)
        assert {(a.condition_id, a.chronic) for a in earlier} == {("cond-asthma", True), ("cond-snomed", True)}
        assert attestations_for(db, ORG, "pat-2") == ()


def test_attestation_dates_follow_the_organizations_calendar(factory) -> None:
    attest(factory, "cond-asthma", True, datetime(2026, 12, 1, 2, 0, tzinfo=UTC))  # Nov 30, 21:00 in New York
    with factory() as db:
        assert attestations_for(db, ORG, "pat-1", timezone=TZ)[0].date == date(2026, 11, 30)
        assert attestations_for(db, ORG, "pat-1")[0].date == date(2026, 12, 1)


@pytest.mark.parametrize(("changes", "message"), [
    ({"condition_id": " "}, "names no condition"),
    ({"chronic": "yes"}, "Chronic must be yes or no"),
    ({"by": "Patient/pat-1"}, "not a Practitioner or PractitionerRole reference"),
])
def test_invalid_attestations_are_refused(factory, changes, message) -> None:
    args = {"condition_id": "cond-asthma", "code": "J45.909", "chronic": True, "by": DOCTOR, **changes}
    with transaction(factory) as db, pytest.raises(InvalidAttestation, match=message):
        record_attestation(db, ORG, "pat-1", args["condition_id"], args["code"], args["chronic"],  # type: ignore[arg-type]
                           args["by"], now=NOW)  # type: ignore[arg-type]
