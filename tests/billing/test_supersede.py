"""A corrected claim's predecessor: what it queued is withdrawn, what it delivered is retired, exactly once.

The end-to-end paths (a correction approved on the biller page, over real HTTP, per EHR profile) are in
test_writeback_e2e; these tests drive `billing.supersede` on the outbox directly, on both databases, for the
cases a page cannot stage: a worker sending the old version at the very moment the correction is approved.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.models import ClaimRow, OutboxRow
from smart_app.billing.outbox import RETIRING
from smart_app.billing.supersede import months_to_sweep, supersede
from smart_app.db import transaction
from smart_app.statuses import OutboxStatus
from tests.billing.test_outbox import MONTH, NOW, ORG, PATIENT, document, observation, put, sessions  # noqa: F401


def claim_version(db: Session, version: int, status: str) -> str:
    claim_id = str(uuid.uuid4())
    db.add(ClaimRow(id=claim_id, organization_id=ORG, patient_id=PATIENT, month=MONTH, version=version,
                    status=status, content={}, content_hash=f"{version:064d}", created_at=NOW, review_note=""))
    return claim_id


def by_identifier(factory: sessionmaker[Session]) -> dict[str, OutboxRow]:
    with factory() as db:
        return {row.identifier: row for row in db.scalars(select(OutboxRow))}


def test_unsent_rows_are_withdrawn_delivered_ones_retired_and_in_flight_ones_swept_later(sessions) -> None:  # noqa: F811
    with transaction(sessions) as db:
        old, new = claim_version(db, 1, "replaced"), claim_version(db, 2, "approved")
    tag = uuid.uuid4().hex[:8]
    sent, in_flight, waiting = observation(f"{tag}-sent"), observation(f"{tag}-flying"), document(f"{tag}-waiting")
    put(sessions, [sent, in_flight, waiting], claim_id=old)
    current = observation(f"{tag}-v2")
    put(sessions, [current], claim_id=new)
    with transaction(sessions) as db:
        db.execute(update(OutboxRow).where(OutboxRow.identifier == sent.identifier)
                   .values(status=OutboxStatus.DONE, fhir_id="obs-sent"))
        # A worker holds this one: it is being sent right now.
        db.execute(update(OutboxRow).where(OutboxRow.identifier == in_flight.identifier)
                   .values(leased_until=NOW + timedelta(seconds=60)))

    with transaction(sessions) as db:
        done = supersede(db, ORG, PATIENT, MONTH, can_update_claim=True, now=NOW)
    assert (done.withdrawn, done.retiring) == (1, 1)
    assert "1 unsent resource(s) of the replaced version withdrawn" in done.sentence()
    rows = by_identifier(sessions)
    assert rows[waiting.identifier].status == "withdrawn" and "replaced" in rows[waiting.identifier].last_error
    assert rows[in_flight.identifier].status == "pending", "a row being sent is not snatched from its worker"
    assert rows[current.identifier].status == "pending", "the current version's rows are its own"
    retire = rows[f"{sent.identifier}:entered-in-error"]
    assert retire.purpose == RETIRING and retire.claim_id == new
    assert retire.payload["id"] == "obs-sent" and retire.payload["status"] == "entered-in-error"
    assert retire.created_at > rows[current.identifier].created_at, "the new version goes out first"

    # Again: nothing more (idempotent).
    with transaction(sessions) as db:
        again = supersede(db, ORG, PATIENT, MONTH, can_update_claim=True, now=NOW)
        assert (again.withdrawn, again.retiring) == (0, 0) and again.sentence() == ""
        assert months_to_sweep(db, ORG, can_update_claim=True) == []

    # The worker finishes: the old version's resource reached the EHR after all, and the next pass retires it.
    with transaction(sessions) as db:
        db.execute(update(OutboxRow).where(OutboxRow.identifier == in_flight.identifier)
                   .values(status=OutboxStatus.DONE, fhir_id="obs-late", leased_until=None))
        assert months_to_sweep(db, ORG, can_update_claim=True) == [(PATIENT, MONTH)]
        late = supersede(db, ORG, PATIENT, MONTH, can_update_claim=True, now=NOW)
        assert (late.withdrawn, late.retiring) == (0, 1)
        assert months_to_sweep(db, ORG, can_update_claim=True) == []
    assert by_identifier(sessions)[f"{in_flight.identifier}:entered-in-error"].payload["id"] == "obs-late"


def test_nothing_is_retired_without_an_approved_version(sessions) -> None:  # noqa: F811
    with transaction(sessions) as db:
        held = claim_version(db, 1, "held")
    put(sessions, [observation(uuid.uuid4().hex[:8])], claim_id=held)
    with transaction(sessions) as db:
        done = supersede(db, ORG, PATIENT, MONTH, can_update_claim=True, now=NOW)
    assert (done.withdrawn, done.retiring) == (0, 0)
    assert {row.status for row in by_identifier(sessions).values()} == {"pending"}
