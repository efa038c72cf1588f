"""One classification of failed FHIR exchanges (`ehr/failures.py`): "temporary" (retry, maybe after the EHR's
wait) or "fatal" (refused), for the errors the FHIR client raises over real HTTP on reads and writes alike.
The outbox and the consent write-back decide retry or refusal from the same classification."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from smart_app.ehr.failures import Failure, FailureKind, classify, classify_error
from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import EhrError, SessionExpired
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig, create_app
from tests.live_server import serve


@pytest.fixture(scope="module")
def ehr() -> Iterator[str]:
    """An open sandbox EHR (no authorization needed), its FHIR base URL."""
    with serve(lambda base: create_app(SandboxConfig(base_url=base, fixtures_dir=data_path("fixtures"),
                                                     open=True))) as base:
        yield base


@pytest.fixture
def faults(ehr: str) -> Iterator[Callable[..., None]]:
    def arm(match: str, kind: str, **extra: object) -> None:
        httpx.post(f"{ehr}/_sandbox/faults", json={"match": match, "kind": kind, **extra}).raise_for_status()

    yield arm
    httpx.delete(f"{ehr}/_sandbox/faults").raise_for_status()


def failure_of(call: Callable[[FhirClient], Awaitable[object]], base: str, token: str | None = None) -> EhrError:
    async def go() -> EhrError:
        async with httpx.AsyncClient(timeout=10) as http:
            with pytest.raises(EhrError) as caught:
                await call(FhirClient(http, f"{base}/fhir", token))
            return caught.value
    return asyncio.run(go())


def read_patient(client: FhirClient) -> Awaitable[object]:
    return client.read("Patient", "ccm-two-chronic")


def write_observation(client: FhirClient) -> Awaitable[object]:
    return client.write("POST", "Observation", {"resourceType": "Observation", "status": "final",
                                                "code": {"text": "minutes"}}, "an Observation")


@pytest.mark.parametrize(("status", "wait", "kind", "throttled"), [
    (None, None, FailureKind.TEMPORARY, False),  # not reached, or timed out
    (200, None, FailureKind.TEMPORARY, False),  # answered, but with nothing the app can use
    (400, None, FailureKind.FATAL, False),
    (401, None, FailureKind.UNAUTHORIZED, False),
    (403, None, FailureKind.FATAL, False),
    (404, None, FailureKind.FATAL, False),
    (408, None, FailureKind.TEMPORARY, False),
    (409, None, FailureKind.FATAL, False),
    (422, None, FailureKind.FATAL, False),
    (429, None, FailureKind.TEMPORARY, True),
    (429, 30.0, FailureKind.TEMPORARY, True),
    (500, None, FailureKind.TEMPORARY, False),
    (503, 1.0, FailureKind.TEMPORARY, True),
    (504, None, FailureKind.TEMPORARY, False),
])
def test_each_status_has_one_meaning(status: int | None, wait: float | None, kind: FailureKind,
                                     throttled: bool) -> None:
    failure = classify(status, wait)
    assert failure == Failure(kind, status, None if kind is FailureKind.UNAUTHORIZED else wait)
    assert failure.temporary == (kind is FailureKind.TEMPORARY)
    assert failure.throttled == throttled


@pytest.mark.parametrize("call", [read_patient, write_observation], ids=["read", "write"])
def test_a_server_error_is_temporary_for_reads_and_writes(ehr: str, faults: Callable[..., None],
                                                          call: Callable[[FhirClient], Awaitable[object]]) -> None:
    faults("GET /fhir/Patient" if call is read_patient else "POST /fhir/Observation", "500")
    error = failure_of(call, ehr)
    assert error.http_status == 500
    assert classify_error(error) == Failure(FailureKind.TEMPORARY, 500)
    assert "minute" in error.hint or "try again" in error.hint


@pytest.mark.parametrize("call", [read_patient, write_observation], ids=["read", "write"])
def test_an_ehr_asking_to_slow_down_is_temporary_with_its_wait(ehr: str, faults: Callable[..., None],
                                                               call: Callable[[FhirClient], Awaitable[object]]) -> None:
    faults("GET /fhir/Patient" if call is read_patient else "POST /fhir/Observation", "429", delay_s=7)
    failure = classify_error(failure_of(call, ehr))
    assert (failure.kind, failure.http_status, failure.retry_after, failure.throttled) == (
        FailureKind.TEMPORARY, 429, 7.0, True)


def test_a_refused_write_is_fatal(ehr: str) -> None:
    # The sandbox refuses a body of another type than the URL names, as a FHIR server must.
    error = failure_of(lambda client: client.write("POST", "Observation", {"resourceType": "Patient"},
                                                   "an Observation"), ehr)
    assert classify_error(error) == Failure(FailureKind.FATAL, 400)
    assert "refused" in error.hint and "must be a Observation" in error.outcome


def test_an_unreachable_ehr_is_temporary() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    error = failure_of(read_patient, "http://127.0.0.1:9")
    assert classify_error(error) == Failure(FailureKind.TEMPORARY, None)


def test_an_authorization_the_ehr_no_longer_honours_asks_for_a_relaunch() -> None:
    # A sandbox that is not open refuses an unknown token with 401.
    with serve(lambda base: create_app(SandboxConfig(base_url=base, fixtures_dir=data_path("fixtures")))) as base:
        async def go(call: Callable[[FhirClient], Awaitable[object]]) -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                with pytest.raises(SessionExpired):
                    await call(FhirClient(http, f"{base}/fhir", "made-up-token"))
        for call in (read_patient, write_observation):
            asyncio.run(go(call))
