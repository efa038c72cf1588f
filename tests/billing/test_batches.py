"""A month's rollup batches on both databases: ranges cover every patient, a claim is a lease another process
takes over once it runs out, and a batch taken over is no longer the first holder's to close."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing import batches
from smart_app.billing.models import RollupBatchRow
from smart_app.billing.rollup import _patients_query
from smart_app.db import transaction, utcnow
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.records import MonthStatusRow

ORG, MONTH = "org-b", "2026-11"


def seed(sessions: sessionmaker[Session], patients: int) -> None:
    with transaction(sessions) as db:
        save_organizations(db, [Organization(id=ORG, name="B", issuer="https://ehr.example.org/fhir", client_id="a",
                                             timezone="America/New_York")])
        db.add_all(MonthStatusRow(organization_id=ORG, patient_id=f"p{n:03d}", month=MONTH, eligible_programs=[],
                                  decision={}, evaluated_at=utcnow()) for n in range(patients))


def test_batches_cover_every_patient_and_a_second_open_joins_the_run(sessions: sessionmaker[Session]) -> None:
    seed(sessions, 25)
    query = _patients_query(ORG, MONTH)
    run = batches.open_run(sessions, ORG, MONTH, query, 10)
    assert batches.open_run(sessions, ORG, MONTH, query, 10) == run, "an open run is joined, not doubled"
    seen: list[str] = []
    while (claimed := batches.claim(sessions, run, "w1")) is not None:
        with transaction(sessions) as db:
            seen += batches.patients_in(db, query, claimed)
            assert batches.still_ours(db, claimed, "w1")
            batches.close(db, claimed, 1, 0, 0, 0, 0)
    assert seen == [f"p{n:03d}" for n in range(25)]
    totals = batches.run_totals(sessions, run)
    assert (totals.batches, totals.done) == (3, 3) and not batches.run_open(sessions, run)
    assert batches.open_run(sessions, ORG, MONTH, query, 10) != run, "a finished run is not reopened"


def test_a_lapsed_lease_is_taken_over_and_the_first_holder_cannot_close(sessions: sessionmaker[Session]) -> None:
    seed(sessions, 5)
    run = batches.open_run(sessions, ORG, MONTH, _patients_query(ORG, MONTH), 10)
    first = batches.claim(sessions, run, "dead")
    assert first is not None and batches.claim(sessions, run, "alive") is None, "held and unexpired: not claimable"
    with transaction(sessions) as db:
        db.execute(update(RollupBatchRow).values(leased_until=utcnow() - timedelta(seconds=1)))
    second = batches.claim(sessions, run, "alive")
    assert second is not None and second.seq == first.seq
    with transaction(sessions) as db:
        assert not batches.still_ours(db, first, "dead")
        assert batches.still_ours(db, second, "alive")
