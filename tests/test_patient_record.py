"""Reading a patient-month from the EHR over real HTTP: one batch where offered, else concurrent reads."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from smart_app.ehr.capabilities import EhrCapabilities, fetch_capabilities
from smart_app.ehr.facts import facts_from_record
from smart_app.ehr.failures import retry_after_seconds
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.record import PatientRecord, fetch_record, record_requests
from smart_app.errors import EhrError
from smart_app.rules.loader import default_rule_set
from tests.stack import Stack, launch_token

# The stack's sandbox shifts fixture dates so their anchor month is the current (UTC) month.
MONTH = dt.datetime.now(dt.UTC).strftime("%Y-%m")
SCALES = default_rule_set().scale_loinc_codes()


def read(stack: Stack, token: str, patient_id: str, caps: EhrCapabilities | None,
         fhir_user: str | None = None) -> PatientRecord:
    async def go() -> PatientRecord:
        async with httpx.AsyncClient(timeout=20) as http:
            found = caps
            if found is None:
                found, why = await fetch_capabilities(http, stack.fhir_base)
                assert why is None
            return await fetch_record(FhirClient(http, stack.fhir_base, token), found, patient_id, MONTH, fhir_user,
                                      SCALES)
    return asyncio.run(go())


def fhir_requests(stack: Stack) -> list[dict]:
    return [r for r in httpx.get(f"{stack.sandbox_url}/_sandbox/requests").json()
            if r["path"].startswith("/fhir") and "/.well-known" not in r["path"] and "metadata" not in r["path"]]


def clear_log(stack: Stack) -> None:
    httpx.delete(f"{stack.sandbox_url}/_sandbox/requests").raise_for_status()


def test_batch_reads_the_whole_record_in_one_request(stack: Stack) -> None:
    token, session = launch_token(stack, "cocm-depression-anxiety")
    clear_log(stack)
    record = read(stack, token, "cocm-depression-anxiety", None, session.fhir_user)
    requests = fhir_requests(stack)
    assert [(r["method"], r["path"].split("?")[0]) for r in requests] == [("POST", "/fhir")]
    assert record.round_trips == 1
    assert record.unavailable == {}
    assert record.patient["id"] == "cocm-depression-anxiety"
    assert record.user is not None and record.user["resourceType"] == "Practitioner"
    facts = facts_from_record(record, MONTH)
    assert {c.code for c in facts.conditions} >= {"F33.1", "F41.1"}
    assert {(s.code, s.date.isoformat()[:7]) for s in facts.rating_scales} >= {("44261-6", MONTH), ("70274-6", MONTH)}
    assert [c.program for c in facts.consents] == ["cocm"]
    assert any(e.program == "cocm" for e in facts.episodes)


def test_without_batch_reads_run_concurrently_and_agree(stack: Stack) -> None:
    token, session = launch_token(stack, "tcm-recent-discharge")
    clear_log(stack)
    batched = read(stack, token, "tcm-recent-discharge", None, session.fhir_user)
    clear_log(stack)
    concurrent = read(stack, token, "tcm-recent-discharge", EhrCapabilities(), session.fhir_user)
    requests = fhir_requests(stack)
    assert len(requests) == len(record_requests("tcm-recent-discharge", MONTH, "Practitioner/x", SCALES))
    assert all(r["method"] == "GET" for r in requests)
    assert facts_from_record(batched, MONTH) == facts_from_record(concurrent, MONTH)
    discharge = facts_from_record(concurrent, MONTH).discharges[0]
    assert discharge.contact_date is not None and discharge.face_to_face_date is not None
    assert discharge.date < discharge.contact_date <= discharge.face_to_face_date
    assert discharge.complexity == "moderate"


def test_entered_in_error_and_snomed_only_conditions_reach_the_rules_with_their_status(stack: Stack) -> None:
    token, _ = launch_token(stack, "ccm-undetermined-snomed")
    facts = facts_from_record(read(stack, token, "ccm-undetermined-snomed", None), MONTH)
    by_system = {(c.system or "").rsplit("/", 1)[-1] for c in facts.conditions}
    assert {"icd-10-cm", "sct"} <= by_system
    assert any(c.verification_status == "entered-in-error" for c in facts.conditions)


def test_an_invalid_token_fails_with_a_relaunch_message(stack: Stack) -> None:
    from smart_app.errors import SessionExpired

    with pytest.raises(SessionExpired, match="no longer accepts"):
        read(stack, "not-a-token", "ccm-two-chronic", EhrCapabilities())


def test_unreachable_ehr_reads_fail_with_an_actionable_error() -> None:
    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            await fetch_record(FhirClient(http, "http://127.0.0.1:9/fhir", "t"), EhrCapabilities(batch=True),
                               "p", MONTH, None, SCALES)
    with pytest.raises(EhrError, match="could not be reached"):
        asyncio.run(go())


def test_an_ehr_asking_to_slow_down_says_how_long_to_wait(stack: Stack) -> None:
    token, session = launch_token(stack, "ccm-two-chronic")
    httpx.post(f"{stack.sandbox_url}/_sandbox/faults",
               json={"match": "POST /fhir", "kind": "429", "count": 1, "delay_s": 7}).raise_for_status()
    try:
        with pytest.raises(EhrError, match=r"slow down \(HTTP 429\)") as caught:
            read(stack, token, "ccm-two-chronic", None, session.fhir_user)
    finally:
        httpx.delete(f"{stack.sandbox_url}/_sandbox/faults").raise_for_status()
    assert caught.value.retry_after == 7 and caught.value.http_status == 429
    assert caught.value.hint == "Reload the page in 7 seconds."
    # The fault was used up: the next read goes through.
    assert read(stack, token, "ccm-two-chronic", None, session.fhir_user).patient["id"] == "ccm-two-chronic"


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Tue, 01 Dec 2026 12:01:30 GMT", now) == 90
    assert retry_after_seconds("Tue, 01 Dec 2026 11:00:00 GMT", now) == 0, "a date in the past means now"
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("-5", now) is None
    assert retry_after_seconds(None, now) is None


def test_every_search_names_the_patient_with_its_type() -> None:
    queries = record_requests("p-1", MONTH, "Practitioner/x", SCALES)
    patients = {name: dict(q.params).get("patient") for name, q in queries.items() if q.params}
    assert patients.pop("user_roles") is None  # by practitioner=Practitioner/x
    assert dict(queries["user_roles"].params) == {"practitioner": "Practitioner/x"}
    assert set(patients.values()) == {"Patient/p-1"}, patients
    # Coverage by `patient`, which R4 defines; by `beneficiary` only where the EHR lists that and not `patient`.
    assert queries["coverage"].params == (("patient", "Patient/p-1"),)
    only_beneficiary = record_requests("p-1", MONTH, None, SCALES,
                                       search_params={"Coverage": frozenset({"beneficiary", "status"})})
    assert only_beneficiary["coverage"].params == (("beneficiary", "Patient/p-1"),)
    both = record_requests("p-1", MONTH, None, SCALES,
                           search_params={"Coverage": frozenset({"beneficiary", "patient"})})
    assert both["coverage"].params == (("patient", "Patient/p-1"),)
