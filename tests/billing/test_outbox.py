"""The write-back outbox against the sandbox EHR over real HTTP, on SQLite and PostgreSQL: exactly once, whatever
happens between the app and the EHR."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

import smart_app.paths
from smart_app.billing.delivery import report_line
from smart_app.billing.models import ClaimRow, OutboxRow
from smart_app.billing.outbox import (
    DeliveryReport,
    OutboxView,
    OutgoingResource,
    backoff,
    deliver,
    deliveries_for_claims,
    enqueue,
    full_url_of,
    outbox_summary,
    retry_delay,
    retry_failed,
)
from smart_app.db import transaction
from smart_app.ehr.capabilities import EhrCapabilities, fetch_capabilities
from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import SessionExpired
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.sandbox import SandboxConfig, create_app
from tests.databases import sessions_for
from tests.live_server import serve

ORG = "org-outbox"
PATIENT = "ccm-two-chronic"
MONTH = "2026-11"
NOW = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
SYSTEM = "urn:smart-app:test-outbox"


@dataclasses.dataclass(frozen=True)
class Sandbox:
    base: str
    caps: EhrCapabilities

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"

    def count(self, resource_type: str, identifier: str) -> int:
        answer = httpx.get(f"{self.base}/_sandbox/resources/{resource_type}", params={"identifier": identifier})
        answer.raise_for_status()
        return int(answer.json()["total"])

    def stored(self, resource_type: str, identifier: str) -> list[dict]:
        bundle = httpx.get(f"{self.fhir}/{resource_type}", params={"identifier": identifier}).json()
        return [e["resource"] for e in bundle.get("entry") or []]

    def clear_log(self) -> None:
        httpx.delete(f"{self.base}/_sandbox/requests").raise_for_status()

    def fhir_log(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"].split("?")[0]) for r in httpx.get(f"{self.base}/_sandbox/requests").json()
                if r["path"].startswith("/fhir")]

    def arm(self, kind: str, match: str = "POST /fhir", count: int = 1, delay_s: float = 3) -> None:
        httpx.post(f"{self.base}/_sandbox/faults", json={"match": match, "kind": kind, "count": count,
                                                         "delay_s": delay_s}).raise_for_status()

    def disarm(self) -> None:
        httpx.delete(f"{self.base}/_sandbox/faults").raise_for_status()


def _sandbox_app(profile: str, open_api: bool = True):  # noqa: ANN202
    def build(base: str):  # noqa: ANN202
        return create_app(SandboxConfig(base_url=base, fixtures_dir=smart_app.paths.data_path("fixtures"),
                                        open=open_api, profile=profile))
    return build


def _running(profile: str) -> Iterator[Sandbox]:
    with serve(_sandbox_app(profile)) as base:
        async def caps() -> EhrCapabilities:
            async with httpx.AsyncClient(timeout=20) as http:
                found, why = await fetch_capabilities(http, f"{base}/fhir")
                assert why is None
                return found
        yield Sandbox(base, asyncio.run(caps()))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from _running("open")


@pytest.fixture(scope="module")
def epic() -> Iterator[Sandbox]:
    yield from _running("epic-like")


@pytest.fixture(scope="module")
def oracle() -> Iterator[Sandbox]:
    yield from _running("oracle-like")


@pytest.fixture
def sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The shared sessions, with the outbox tests' organization saved."""
    with transaction(sessions) as db:
        save_organizations(db, [Organization(id=ORG, name="Outbox Clinic", issuer="http://127.0.0.1:9/fhir",
                                             client_id="app")])
    return sessions


# ---------------------------------------------------------------- resources and modes


def _tag() -> str:
    return uuid.uuid4().hex[:12]


def _identified(payload: dict, purpose: str, value: str) -> OutgoingResource:
    payload = {**payload, "identifier": [{"system": SYSTEM, "value": value}]}
    return OutgoingResource(payload["resourceType"], purpose, SYSTEM, value, payload)


def observation(value: str, patient: str = PATIENT) -> OutgoingResource:
    return _identified({"resourceType": "Observation", "status": "final",
                        "code": {"text": "Care management minutes"}, "subject": {"reference": f"Patient/{patient}"},
                        "effectiveDateTime": "2026-11-30", "valueQuantity": {"value": 25, "unit": "min"}},
                       "minutes", value)


def task(value: str) -> OutgoingResource:
    return _identified({"resourceType": "Task", "status": "completed", "intent": "order",
                        "description": "Care plan review call", "for": {"reference": f"Patient/{PATIENT}"}},
                       "activity", value)


def communication(value: str) -> OutgoingResource:
    return _identified({"resourceType": "Communication", "status": "completed",
                        "subject": {"reference": f"Patient/{PATIENT}"},
                        "payload": [{"contentString": "Care plan review call, 20 minutes"}]}, "activity", value)


def document(value: str) -> OutgoingResource:
    return _identified({"resourceType": "DocumentReference", "status": "current",
                        "subject": {"reference": f"Patient/{PATIENT}"},
                        "content": [{"attachment": {"contentType": "text/plain", "data": "bWludXRlcw=="}}]},
                       "superbill", value)


def claim(value: str, minutes_ref: str) -> OutgoingResource:
    return _identified({"resourceType": "Claim", "status": "active", "use": "claim",
                        "patient": {"reference": f"Patient/{PATIENT}"},
                        "supportingInfo": [{"sequence": 1, "category": {"text": "info"},
                                            "valueReference": {"reference": minutes_ref}}]}, "claim", value)


def mixed(n: int) -> list[OutgoingResource]:
    tag = _tag()
    makers = (observation, task, document)
    return [makers[i % 3](f"{tag}-{i}") for i in range(n)]


MODES = ("transaction", "conditional", "search")


def caps_for(sandbox: Sandbox, mode: str) -> EhrCapabilities:
    """The open sandbox's capabilities, narrowed to the way of sending under test."""
    if mode == "transaction":
        return sandbox.caps
    if mode == "conditional":
        return dataclasses.replace(sandbox.caps, transaction=False)
    return dataclasses.replace(sandbox.caps, transaction=False, conditional_create=frozenset())


def put(sessions: sessionmaker[Session], resources: list[OutgoingResource], claim_id: str | None = None,
        month: str = MONTH, now: datetime | None = NOW) -> int:
    with transaction(sessions) as db:
        return enqueue(db, organization_id=ORG, claim_id=claim_id, patient_id=PATIENT, month=month,
                       resources=resources, now=now)


def send(sessions: sessionmaker[Session], fhir: str, caps: EhrCapabilities, *, timeout: float = 20,
         transport: httpx.AsyncBaseTransport | None = None, **options: object) -> DeliveryReport:
    options.setdefault("now", NOW)

    async def go() -> DeliveryReport:
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
            return await deliver(sessions, FhirClient(http, fhir, None), caps, ORG, **options)  # type: ignore[arg-type]
    return asyncio.run(go())


def rows(sessions: sessionmaker[Session]) -> list[OutboxRow]:
    with sessions() as db:
        return list(db.scalars(select(OutboxRow).order_by(OutboxRow.created_at)))


def token(resource: OutgoingResource) -> str:
    return resource.identifier


def assert_each_once(sandbox: Sandbox, resources: list[OutgoingResource], sessions: sessionmaker[Session]) -> None:
    by_identifier = {r.identifier: r for r in rows(sessions)}
    for resource in resources:
        assert sandbox.count(resource.resource_type, token(resource)) == 1, resource.identifier
        row = by_identifier[resource.identifier]
        assert row.status == "done" and row.leased_until is None
        (stored,) = sandbox.stored(resource.resource_type, token(resource))
        assert stored["id"] == row.fhir_id


# ---------------------------------------------------------------- enqueue


def test_enqueueing_twice_adds_nothing(sessions) -> None:
    resources = mixed(3)
    assert put(sessions, resources) == 3
    assert put(sessions, resources) == 0
    assert put(sessions, [resources[0], resources[0], observation(f"{_tag()}-new")]) == 1
    assert len(rows(sessions)) == 4
    first = rows(sessions)[0]
    assert (first.status, first.attempts, first.next_attempt_at, first.leased_until, first.fhir_id,
            first.identifier) == ("pending", 0, NOW, None, None, resources[0].identifier)


def test_enqueue_is_part_of_the_callers_transaction(sessions) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as db:
        enqueue(db, organization_id=ORG, claim_id=None, patient_id=PATIENT, month=MONTH, resources=mixed(2), now=NOW)
        raise RuntimeError("the decision failed")
    assert rows(sessions) == []


def test_a_resource_must_carry_its_identifier(sessions) -> None:
    bare = observation("x")
    with pytest.raises(ValueError, match="does not carry its identifier"):
        put(sessions, [dataclasses.replace(bare, payload={**bare.payload, "identifier": []})])
    with pytest.raises(ValueError, match="is not a Task"):
        put(sessions, [dataclasses.replace(bare, resource_type="Task")])


# ---------------------------------------------------------------- delivery


@pytest.mark.parametrize("mode", MODES)
def test_deliver_creates_each_resource_once_and_never_again(sandbox, sessions, mode) -> None:
    resources = mixed(5)
    put(sessions, resources)
    sandbox.clear_log()
    report = send(sessions, sandbox.fhir, caps_for(sandbox, mode))
    assert report == DeliveryReport(sent=5)
    log = sandbox.fhir_log()
    assert_each_once(sandbox, resources, sessions)
    if mode == "transaction":
        assert log == [("POST", "/fhir")]
    elif mode == "conditional":
        assert log == [("POST", f"/fhir/{r.resource_type}") for r in resources]
    else:
        assert log == [call for r in resources
                       for call in (("GET", f"/fhir/{r.resource_type}"), ("POST", f"/fhir/{r.resource_type}"))]
    assert all(row.attempts == 1 and row.last_error == "" for row in rows(sessions))
    # Done rows are never sent again, whenever the worker runs.
    sandbox.clear_log()
    assert send(sessions, sandbox.fhir, caps_for(sandbox, mode), now=NOW + timedelta(days=3)) == DeliveryReport()
    assert sandbox.fhir_log() == []


def test_a_transaction_carries_at_most_batch_size_rows(sandbox, sessions) -> None:
    resources = mixed(45)
    put(sessions, resources)
    sandbox.clear_log()
    report = send(sessions, sandbox.fhir, sandbox.caps, batch_size=20)
    assert report.sent == 45
    assert sandbox.fhir_log() == [("POST", "/fhir")] * 3
    assert_each_once(sandbox, resources, sessions)


def test_the_limit_bounds_one_run(sandbox, sessions) -> None:
    resources = mixed(5)
    put(sessions, resources)
    assert send(sessions, sandbox.fhir, caps_for(sandbox, "conditional"), limit=2).sent == 2
    assert send(sessions, sandbox.fhir, caps_for(sandbox, "conditional"), limit=2).sent == 2
    assert send(sessions, sandbox.fhir, caps_for(sandbox, "conditional"), limit=2).sent == 1
    assert_each_once(sandbox, resources, sessions)


@pytest.mark.parametrize("mode", MODES)
def test_references_between_rows_resolve(sandbox, sessions, mode) -> None:
    tag = _tag()
    minutes = observation(f"{tag}-minutes")
    the_claim = claim(f"{tag}-claim", full_url_of(minutes.identifier))
    # The claim is enqueued first: outside a transaction it waits until the Observation is delivered.
    put(sessions, [the_claim, minutes])
    report = send(sessions, sandbox.fhir, caps_for(sandbox, mode))
    assert report == DeliveryReport(sent=2)
    assert_each_once(sandbox, [minutes, the_claim], sessions)
    (stored_minutes,) = sandbox.stored("Observation", token(minutes))
    (stored_claim,) = sandbox.stored("Claim", token(the_claim))
    assert stored_claim["supportingInfo"][0]["valueReference"]["reference"] == f"Observation/{stored_minutes['id']}"
    # What the outbox keeps is what was enqueued.
    (claim_row,) = [r for r in rows(sessions) if r.resource_type == "Claim"]
    assert claim_row.payload == the_claim.payload


def test_a_reference_to_a_refused_row_fails_with_what_to_do(sandbox, sessions) -> None:
    tag = _tag()
    minutes = observation(f"{tag}-minutes", patient="nobody-here")
    the_claim = claim(f"{tag}-claim", full_url_of(minutes.identifier))
    put(sessions, [minutes, the_claim])
    report = send(sessions, sandbox.fhir, caps_for(sandbox, "search"))
    assert report == DeliveryReport(failed=2)
    claim_row = next(r for r in rows(sessions) if r.resource_type == "Claim")
    assert claim_row.last_error.startswith("This Claim points at the minutes Observation, which is failed.")
    assert sandbox.count("Claim", token(the_claim)) == 0


def test_an_update_is_sent_as_a_put_of_the_stored_resource(sandbox, sessions) -> None:
    original = claim(f"{_tag()}-claim", "Observation/none")
    put(sessions, [original])
    send(sessions, sandbox.fhir, caps_for(sandbox, "conditional"))
    fhir_id = rows(sessions)[0].fhir_id
    corrected = {**original.payload, "id": fhir_id, "status": "entered-in-error"}
    put(sessions, [OutgoingResource("Claim", "replaces-claim", "urn:smart-app:claim-correction",
                                    original.identifier_value, corrected)])
    sandbox.clear_log()
    report = send(sessions, sandbox.fhir, caps_for(sandbox, "search"))
    assert report == DeliveryReport(sent=1)
    assert sandbox.fhir_log() == [("PUT", f"/fhir/Claim/{fhir_id}")]
    (stored,) = sandbox.stored("Claim", token(original))
    assert stored["id"] == fhir_id and stored["status"] == "entered-in-error"


def test_what_the_ehr_does_not_accept_is_not_sent(sandbox, sessions) -> None:
    caps = dataclasses.replace(caps_for(sandbox, "conditional"),
                               interactions={**sandbox.caps.interactions, "Task": frozenset({"read"})})
    resources = [task(f"{_tag()}-task"), observation(f"{_tag()}-obs")]
    put(sessions, resources)
    sandbox.clear_log()
    report = send(sessions, sandbox.fhir, caps)
    assert report == DeliveryReport(sent=1, not_accepted=1)
    assert sandbox.fhir_log() == [("POST", "/fhir/Observation")]
    task_row = next(r for r in rows(sessions) if r.resource_type == "Task")
    assert task_row.status == "not-accepted"
    assert task_row.last_error == ("This EHR does not accept Task create from apps; billers get it from the export "
                                   "and the biller page.")


# ---------------------------------------------------------------- refusals and failures


def test_a_refusal_fails_the_row_with_the_ehrs_reason_until_retried(sandbox, sessions) -> None:
    good, bad = observation(f"{_tag()}-good"), observation(f"{_tag()}-bad", patient="nobody-here")
    put(sessions, [good, bad])
    report = send(sessions, sandbox.fhir, caps_for(sandbox, "conditional"))
    assert report == DeliveryReport(sent=1, failed=1)
    failed = next(r for r in rows(sessions) if r.status == "failed")
    assert failed.identifier == bad.identifier and failed.attempts == 1 and failed.fhir_id is None
    assert failed.last_error.startswith("The EHR refused the Observation (HTTP 422): ")
    assert "Patient/nobody-here, which does not exist" in failed.last_error
    assert "What to fix: correct what the EHR names above" in failed.last_error
    assert failed.last_error.endswith("if the EHR does not take this Observation from apps (some EHRs accept only "
                                      'vital signs and labs), set minutes = "DocumentReference" under [writeback] '
                                      "in the organization file.")
    # Failed rows stay put until someone fixes the cause and puts them back.
    assert send(sessions, sandbox.fhir, caps_for(sandbox, "conditional"),
                now=NOW + timedelta(days=1)) == DeliveryReport()
    with transaction(sessions) as db:
        assert retry_failed(db, ORG, [failed.id], now=NOW) == 1
        assert retry_failed(db, ORG, [failed.id], now=NOW) == 0  # already pending
    again = next(r for r in rows(sessions) if r.id == failed.id)
    assert (again.status, again.attempts) == ("pending", 0)
    assert again.last_error.startswith("Put back to pending after: The EHR refused")
    assert send(sessions, sandbox.fhir, caps_for(sandbox, "conditional")).failed == 1


def test_a_refused_transaction_fails_its_rows_together(sandbox, sessions) -> None:
    good, bad = observation(f"{_tag()}-good"), observation(f"{_tag()}-bad", patient="nobody-here")
    put(sessions, [good, bad])
    report = send(sessions, sandbox.fhir, sandbox.caps)
    assert report == DeliveryReport(failed=2)
    assert sandbox.count("Observation", token(good)) == 0
    for row in rows(sessions):
        assert row.status == "failed"
        assert row.last_error.startswith("The EHR refused the transaction of 2 resources (HTTP 422): entry 1: ")
        assert "Nothing in it was written." in row.last_error
    # Put back and sent one by one, the good one goes through.
    with transaction(sessions) as db:
        assert retry_failed(db, ORG, [r.id for r in rows(sessions)], now=NOW) == 2
    assert send(sessions, sandbox.fhir, caps_for(sandbox, "conditional")) == DeliveryReport(sent=1, failed=1)


def test_an_unreachable_ehr_keeps_rows_pending_with_backoff(sessions) -> None:
    resources = mixed(2)
    put(sessions, resources)
    report = send(sessions, "http://127.0.0.1:9/fhir", EhrCapabilities(
        interactions={t: frozenset({"create"}) for t in ("Observation", "Task")}, conditional_create=frozenset(
            {"Observation", "Task"})))
    assert report == DeliveryReport(retried=2)
    for row in rows(sessions):
        assert (row.status, row.attempts, row.leased_until) == ("pending", 1, None)
        assert row.next_attempt_at == NOW + timedelta(seconds=2)
        assert "could not be reached" in row.last_error
    caps = EhrCapabilities(interactions={t: frozenset({"create"}) for t in ("Observation", "Task")})
    # Not due yet: nothing is tried.
    assert send(sessions, "http://127.0.0.1:9/fhir", caps, now=NOW + timedelta(seconds=1)) == DeliveryReport()
    later = NOW + timedelta(seconds=2)
    assert send(sessions, "http://127.0.0.1:9/fhir", caps, now=later) == DeliveryReport(retried=2)
    assert {(r.attempts, r.next_attempt_at) for r in rows(sessions)} == {(2, later + timedelta(seconds=4))}
    # The base is a parameter; the wait doubles up to 15 minutes.
    send(sessions, "http://127.0.0.1:9/fhir", caps, now=NOW + timedelta(hours=1), backoff_base=0.5)
    assert {r.next_attempt_at for r in rows(sessions)} == {NOW + timedelta(hours=1, seconds=2)}
    assert [backoff(n).total_seconds() for n in (0, 1, 2, 8, 9, 40)] == [2, 4, 8, 512, 900, 900]


def test_an_expired_authorization_leaves_rows_untouched_and_raises(sessions) -> None:
    resources = mixed(3)
    put(sessions, resources)
    with serve(_sandbox_app("open", open_api=False)) as closed:
        with pytest.raises(SessionExpired):
            send(sessions, f"{closed}/fhir", EhrCapabilities(
                interactions={t: frozenset({"create"}) for t in ("Observation", "Task", "DocumentReference")}))
        with pytest.raises(SessionExpired):
            send(sessions, f"{closed}/fhir", EhrCapabilities(
                transaction=True, interactions={t: frozenset({"create"}) for t in ("Observation", "Task",
                                                                                  "DocumentReference")},
                conditional_create=frozenset({"Observation", "Task", "DocumentReference"})))
    for row in rows(sessions):
        assert (row.status, row.attempts, row.leased_until, row.next_attempt_at) == ("pending", 0, None, NOW)


# ---------------------------------------------------------------- several workers, crashes, faults


def _worker(database_url: str, fhir: str, caps: EhrCapabilities, barrier: threading.Barrier,
            reports: list[DeliveryReport], errors: list[BaseException], **options: object) -> None:
    try:
        # Its own engine and pool, as another worker process has.
        with sessions_for(database_url) as factory:
            barrier.wait(timeout=30)
            reports.append(send(factory, fhir, caps, **options))
    except BaseException as exc:  # noqa: BLE001 - reported to the test thread
        errors.append(exc)


@pytest.mark.parametrize("mode", MODES)
def test_two_concurrent_workers_create_each_resource_once(sandbox, sessions, database_url, mode) -> None:
    resources = mixed(30)
    put(sessions, resources)
    barrier = threading.Barrier(2)
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_worker, args=(database_url, sandbox.fhir, caps_for(sandbox, mode), barrier,
                                                      reports, errors), kwargs={"batch_size": 5})
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sum(r.sent for r in reports) == 30 and sum(r.already_there for r in reports) == 0
    assert_each_once(sandbox, resources, sessions)


class WorkerDied(Exception):
    """The process running the worker ends right after the EHR answered."""


class DieAfterAnswer(httpx.AsyncBaseTransport):
    """Passes requests to the real sandbox; after the first write has been answered, the worker 'dies'."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method in ("POST", "PUT"):
            await response.aread()
            raise WorkerDied("killed after the EHR committed")
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("mode", MODES)
def test_a_row_of_a_crashed_worker_is_taken_over_after_its_lease_and_delivered_once(sandbox, sessions,
                                                                                   mode) -> None:
    resources = mixed(3)
    put(sessions, resources)
    with pytest.raises(WorkerDied):
        send(sessions, sandbox.fhir, caps_for(sandbox, mode), transport=DieAfterAnswer(), lease_seconds=60)
    leased = [r for r in rows(sessions) if r.leased_until is not None]
    assert leased and all(r.status == "pending" and r.leased_until == NOW + timedelta(seconds=60) for r in leased)
    # While the lease runs, nobody else sends the row.
    sandbox.clear_log()
    during = send(sessions, sandbox.fhir, caps_for(sandbox, mode), now=NOW + timedelta(seconds=30))
    assert during.already_there == 0 and during.sent == 3 - len(leased)
    # After it, the row is picked up again; the EHR already has it, so nothing new is created.
    after = send(sessions, sandbox.fhir, caps_for(sandbox, mode), now=NOW + timedelta(seconds=61))
    assert after == DeliveryReport(already_there=len(leased))
    assert_each_once(sandbox, resources, sessions)


def test_an_outcome_of_a_worker_whose_lease_was_taken_over_is_dropped(sandbox, sessions) -> None:
    resources = mixed(1)
    put(sessions, resources)
    # Another worker holds the row under a newer lease than the one this worker will write under.
    with transaction(sessions) as db:
        db.execute(update(OutboxRow).values(leased_until=NOW - timedelta(seconds=1)))
    report = send(sessions, sandbox.fhir, caps_for(sandbox, "conditional"))
    assert report.sent == 1
    with transaction(sessions) as db:
        assert db.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "done")) == 1


FAULTS = ("500", "503", "timeout", "drop", "500-after-commit", "drop-after-commit")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", FAULTS)
def test_after_faults_part_way_everything_arrives_exactly_once(sandbox, sessions, mode, kind) -> None:
    resources = mixed(6)
    put(sessions, resources)
    caps = caps_for(sandbox, mode)
    first = send(sessions, sandbox.fhir, caps, limit=2, batch_size=2)
    assert first.sent == 2
    sandbox.arm(kind, count=1, delay_s=3)
    try:
        faulted = send(sessions, sandbox.fhir, caps, batch_size=2, timeout=1)
    finally:
        sandbox.disarm()
    hit = 2 if mode == "transaction" else 1
    # A 503 carries Retry-After: the EHR asked the app to slow down, so the run stops at the first one and
    # the rows it did not try wait as long (2 s: the backoff is longer than the 1 s asked for).
    throttled = kind == "503"
    resume = NOW + timedelta(seconds=2)
    if throttled:
        assert faulted == DeliveryReport(retried=hit, paused_until=resume)
        untried = [r for r in rows(sessions) if r.status == "pending" and r.attempts == 0]
        assert len(untried) == 4 - hit and all(r.next_attempt_at == resume for r in untried)
    else:
        assert faulted == DeliveryReport(sent=4 - hit, retried=hit)
    retried = [r for r in rows(sessions) if r.status == "pending" and r.attempts == 1]
    assert len(retried) == hit
    assert all(r.next_attempt_at == resume and r.last_error for r in retried)
    final = send(sessions, sandbox.fhir, caps, batch_size=2, now=resume)
    committed = kind.endswith("-after-commit")
    expected = (DeliveryReport(already_there=hit) if committed else
                DeliveryReport(sent=4) if throttled else DeliveryReport(sent=hit))
    assert final == expected
    assert_each_once(sandbox, resources, sessions)


@pytest.mark.parametrize("mode", MODES)
def test_an_ehr_asking_to_slow_down_pauses_the_outbox_for_as_long_as_it_asks(sandbox, sessions, mode) -> None:
    resources = mixed(5)
    put(sessions, resources)
    caps = caps_for(sandbox, mode)
    sandbox.arm("429", count=1, delay_s=30)
    sandbox.clear_log()
    try:
        report = send(sessions, sandbox.fhir, caps, batch_size=2)
    finally:
        sandbox.disarm()
    resume = NOW + timedelta(seconds=30)
    hit = 2 if mode == "transaction" else 1
    assert report == DeliveryReport(retried=hit, paused_until=resume), "one refused request, nothing more sent"
    assert len([r for r in sandbox.fhir_log() if r[0] == "POST"]) == 1
    assert "slow down" in report_line(report) and f"{resume:%H:%M:%S} UTC" in report_line(report)
    stored = rows(sessions)
    assert {(r.status, r.next_attempt_at) for r in stored} == {("pending", resume)}
    assert sorted(r.attempts for r in stored) == [0] * (5 - hit) + [1] * hit, "only the refused rows count a try"
    assert all("slow down (HTTP 429)" in r.last_error for r in stored if r.attempts)
    sandbox.clear_log()
    assert send(sessions, sandbox.fhir, caps, batch_size=2, now=resume - timedelta(seconds=1)) == DeliveryReport()
    assert sandbox.fhir_log() == [], "nothing goes to the EHR before the time it asked for"
    assert send(sessions, sandbox.fhir, caps, batch_size=2, now=resume).delivered == 5
    assert_each_once(sandbox, resources, sessions)


def test_the_wait_is_the_backoff_or_what_the_ehr_asked_for_at_most_a_day() -> None:
    assert retry_delay(0, 30) == timedelta(seconds=30)
    assert retry_delay(3, 1) == backoff(3) == timedelta(seconds=16), "a shorter Retry-After does not shorten it"
    assert retry_delay(0, 10**9) == timedelta(days=1), "a huge (or buggy) Retry-After is capped"
    assert retry_delay(2, None) == backoff(2)


# ---------------------------------------------------------------- what the EHR profiles do


def test_an_epic_like_ehr_gets_observations_and_communications_once_and_no_tasks(epic, sessions) -> None:
    tag = _tag()
    resources = [observation(f"{tag}-obs"), communication(f"{tag}-comm"), document(f"{tag}-doc"),
                 task(f"{tag}-task")]
    put(sessions, resources)
    assert not epic.caps.transaction and epic.caps.conditional_create == frozenset()
    epic.clear_log()
    report = send(sessions, epic.fhir, epic.caps)
    assert report == DeliveryReport(sent=3, not_accepted=1)
    assert [m for m, _ in epic.fhir_log()] == ["GET", "POST"] * 3
    assert_each_once(epic, resources[:3], sessions)
    # The epic-like server ignores If-None-Exist; the outbox never depends on it.
    epic.arm("drop-after-commit", match="POST /fhir/Communication")
    tag = _tag()
    more = [communication(f"{tag}-comm")]
    put(sessions, more)
    assert send(sessions, epic.fhir, epic.caps).retried == 1
    assert send(sessions, epic.fhir, epic.caps, now=NOW + timedelta(seconds=2)) == DeliveryReport(already_there=1)
    assert_each_once(epic, more, sessions)


def test_an_oracle_like_ehr_refuses_the_minutes_observation_and_says_how_to_route_it(oracle, sessions) -> None:
    resources = [observation(f"{_tag()}-obs"), communication(f"{_tag()}-comm")]
    put(sessions, resources)
    report = send(sessions, oracle.fhir, oracle.caps)
    assert report == DeliveryReport(sent=1, failed=1)
    failed = next(r for r in rows(sessions) if r.status == "failed")
    assert failed.last_error.startswith("The EHR refused the Observation (HTTP 422): Observation create is only "
                                        "supported for categories laboratory, vital-signs")
    assert failed.last_error.endswith('set minutes = "DocumentReference" under [writeback] in the organization file.')


# ---------------------------------------------------------------- views


def test_views_for_the_biller_page(sandbox, sessions) -> None:
    with transaction(sessions) as db:
        for version, claim_id in enumerate(("claim-a", "claim-b"), start=1):
            db.add(ClaimRow(id=claim_id, organization_id=ORG, patient_id=PATIENT, month=MONTH, version=version,
                            status="approved", content={}, content_hash="0" * 64, created_at=NOW, review_note=""))
    a = [observation(f"{_tag()}-a"), observation(f"{_tag()}-a-bad", patient="nobody-here")]
    b = [task(f"{_tag()}-b")]
    put(sessions, a, claim_id="claim-a")
    put(sessions, b, claim_id="claim-b")
    put(sessions, [document(f"{_tag()}-october")], month="2026-10")
    send(sessions, sandbox.fhir, caps_for(sandbox, "conditional"))
    with sessions() as db:
        views = deliveries_for_claims(db, ["claim-a", "claim-b", "claim-none"])
        summary = outbox_summary(db, ORG, MONTH)
        everything = outbox_summary(db, ORG, None)
    assert set(views) == {"claim-a", "claim-b", "claim-none"} and views["claim-none"] == []
    first, second = views["claim-a"]
    assert isinstance(first, OutboxView)
    assert (first.resource_type, first.purpose, first.status, first.attempts, first.last_error) == (
        "Observation", "minutes", "done", 1, "")
    assert first.fhir_id and first.updated_at == NOW and first.claim_id == "claim-a"
    assert second.status == "failed" and "nobody-here" in second.last_error
    assert [v.resource_type for v in views["claim-b"]] == ["Task"]
    assert summary == {"pending": 0, "done": 2, "failed": 1, "not-accepted": 0, "withdrawn": 0}
    assert everything == {"pending": 0, "done": 3, "failed": 1, "not-accepted": 0, "withdrawn": 0}


# ---------------------------------------------------------------- the command line


def _cli(*args: str, database_url: str, tmp_path) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    env = {**os.environ, "SMART_APP_DATABASE_URL": database_url, "SMART_APP_DATA_DIR": str(tmp_path),
           "SMART_APP_SECRET_KEY": "x" * 40}
    return subprocess.run([sys.executable, "-m", "smart_app.cli", "outbox", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_outbox_run_and_status_on_the_command_line(sandbox, sessions, database_url, tmp_path) -> None:
    with transaction(sessions) as db:
        save_organizations(db, [
            Organization(id=ORG, name="Outbox Clinic", issuer=sandbox.fhir, client_id="app",
                         extra={"writeback_open": True, "writeback": {"transaction": False}}),
            Organization(id="org-closed", name="Closed Clinic", issuer="http://127.0.0.1:9/fhir", client_id="app")])
    resources = [observation(f"{_tag()}-cli"), observation(f"{_tag()}-cli-bad", patient="nobody-here")]
    put(sessions, resources, now=None)  # the command runs on the real clock
    # Sent one by one (the organization file turns transactions off), the good one arrives.
    ran = _cli("run", "--org", ORG, "--once", database_url=database_url, tmp_path=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert f"{ORG}: 1 sent, 0 already in the EHR, 0 to retry, 1 failed" in ran.stdout
    assert sandbox.count("Observation", resources[0].identifier) == 1
    status = _cli("status", "--org", ORG, "--month", MONTH, database_url=database_url, tmp_path=tmp_path)
    assert status.returncode == 0, status.stderr
    assert ("Outbox of Outbox Clinic in 2026-11: 0 pending, 1 done, 1 failed, 0 not-accepted, 0 withdrawn."
            in status.stdout)
    assert "failed Observation (minutes)" in status.stdout and "nobody-here" in status.stdout
    # Without an open EHR the worker needs Backend Services, which a public client cannot use.
    closed = _cli("run", "--org", "org-closed", "--once", database_url=database_url, tmp_path=tmp_path)
    assert closed.returncode == 2
    assert "Backend Services" in closed.stderr and "what to do:" in closed.stderr
    unknown = _cli("status", "--org", "nobody", database_url=database_url, tmp_path=tmp_path)
    assert unknown.returncode == 2 and "No organization 'nobody'" in unknown.stderr
