"""A month's rollup as batches that several processes share through the database.

The first process to start a month's rollup (under an advisory lock on the organization and month) splits its
patients into ranges of patient ids and writes one `rollup_batches` row per range; every process running the
same month, on this machine or another, joins that run and claims pending batches one at a time (`FOR UPDATE
SKIP LOCKED` on PostgreSQL, the write lock on SQLite). A claim is a lease: a batch whose process died is taken
over once the lease runs out, and a batch is closed in the transaction that stores its claims, so it is decided
exactly once. SQLite has one writer: there the batches run one after another, whatever the number of processes.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Subquery, func, select
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.models import RollupBatchRow
from smart_app.db import transaction, utcnow
from smart_app.ledger.writelock import hold_key
from smart_app.statuses import RollupBatchStatus

# Long enough for a batch of EHR reads on a slow EHR; a crashed process's batch is taken over after it.
LEASE = timedelta(minutes=15)
_RUN_SPACE = "smart_app.billing.rollup"


@dataclass(frozen=True)
class Claimed:
    """A batch this process holds: its run, number and patient-id range."""

    run_id: str
    seq: int
    after_patient: str | None
    through_patient: str | None


def worker_name() -> str:
    """Who holds a claim: host, process and a random part (two runs in one process are two workers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def open_run(sessions: sessionmaker[Session], organization_id: str, month: str, patients: Subquery,
             size: int) -> str:
    """The run of the month that is still open, or a new one split into batches of `size` patients."""
    with transaction(sessions) as db:
        return open_run_in(db, organization_id, month, patients, size)


def open_run_in(db: Session, organization_id: str, month: str, patients: Subquery, size: int) -> str:
    """`open_run` inside the caller's transaction (the new run's batches are written when it commits)."""
    # Two processes starting at once: the second waits here, then joins the run the first wrote.
    hold_key(db, _RUN_SPACE, f"{organization_id}|{month}")
    open_id = db.scalar(select(RollupBatchRow.run_id).where(
        RollupBatchRow.organization_id == organization_id, RollupBatchRow.month == month,
        RollupBatchRow.status != RollupBatchStatus.DONE).limit(1))
    if open_id is not None:
        return open_id
    run_id = str(uuid.uuid4())
    bounds: list[str] = []
    ids = db.execute(select(patients.c.patient_id).order_by(patients.c.patient_id)
                     .execution_options(yield_per=2000)).scalars()
    for n, patient_id in enumerate(ids, start=1):
        if n % size == 0:
            bounds.append(patient_id)
    # Ranges are open at both ends, so a patient who appears during the run still falls into one.
    edges: list[str | None] = [None, *bounds, None]
    now = utcnow()
    db.add_all(RollupBatchRow(run_id=run_id, seq=seq, organization_id=organization_id, month=month,
                              after_patient=edges[seq], through_patient=edges[seq + 1],
                              status=RollupBatchStatus.PENDING, patients=0, new_versions=0, unchanged=0,
                              billable=0, errors=0, created_at=now)
               for seq in range(len(edges) - 1))
    return run_id


def claim(sessions: sessionmaker[Session], run_id: str, worker: str) -> Claimed | None:
    """Lease the run's next batch nobody holds (pending, or leased by a process whose lease ran out)."""
    now = utcnow()
    with transaction(sessions) as db:
        if db.get_bind().dialect.name == "sqlite":
            hold_key(db, _RUN_SPACE, run_id)  # the write lock: no SKIP LOCKED, one claimer at a time
        row = db.scalars(select(RollupBatchRow).where(
            RollupBatchRow.run_id == run_id,
            (RollupBatchRow.status == RollupBatchStatus.PENDING)
            | ((RollupBatchRow.status == RollupBatchStatus.CLAIMED) & (RollupBatchRow.leased_until < now)))
            .order_by(RollupBatchRow.seq).limit(1).with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        row.status, row.claimed_by, row.leased_until = RollupBatchStatus.CLAIMED, worker, now + LEASE
        return Claimed(row.run_id, row.seq, row.after_patient, row.through_patient)


def run_open(sessions: sessionmaker[Session], run_id: str) -> bool:
    """Whether any batch of the run is not done yet (pending, or held by a process)."""
    with transaction(sessions) as db:
        return db.scalar(select(RollupBatchRow.seq).where(
            RollupBatchRow.run_id == run_id, RollupBatchRow.status != RollupBatchStatus.DONE).limit(1)) is not None


def patients_in(db: Session, patients: Subquery, claimed: Claimed) -> list[str]:
    """The patient ids of the month that fall into a claimed batch's range, in order."""
    query = select(patients.c.patient_id)
    if claimed.after_patient is not None:
        query = query.where(patients.c.patient_id > claimed.after_patient)
    if claimed.through_patient is not None:
        query = query.where(patients.c.patient_id <= claimed.through_patient)
    return list(db.scalars(query.order_by(patients.c.patient_id)))


def still_ours(db: Session, claimed: Claimed, worker: str) -> bool:
    """Lock the batch's row for this transaction; whether this process still holds it (not taken over, not done)."""
    if db.get_bind().dialect.name == "sqlite":
        hold_key(db, _RUN_SPACE, claimed.run_id)
    row = db.scalars(select(RollupBatchRow).where(RollupBatchRow.run_id == claimed.run_id,
                                                  RollupBatchRow.seq == claimed.seq).with_for_update()).one()
    return row.status == RollupBatchStatus.CLAIMED and row.claimed_by == worker


def close(db: Session, claimed: Claimed, patients: int, new_versions: int, unchanged: int, billable: int,
          errors: int) -> None:
    """Mark a batch done with what it did, in the transaction that stored its claims."""
    row = db.get_one(RollupBatchRow, (claimed.run_id, claimed.seq))
    row.status, row.leased_until, row.done_at = RollupBatchStatus.DONE, None, utcnow()
    row.patients, row.new_versions, row.unchanged, row.billable, row.errors = (
        patients, new_versions, unchanged, billable, errors)


@dataclass(frozen=True)
class RunTotals:
    """What all the processes of one run did, summed from its batches."""

    batches: int
    done: int
    patients: int
    new_versions: int
    unchanged: int
    billable: int
    errors: int


def run_totals(sessions: sessionmaker[Session], run_id: str) -> RunTotals:
    """The sums of a run's batches (done ones carry their counts)."""
    b = RollupBatchRow
    with transaction(sessions) as db:
        row = db.execute(select(
            func.count(), func.count(b.done_at), func.coalesce(func.sum(b.patients), 0),
            func.coalesce(func.sum(b.new_versions), 0), func.coalesce(func.sum(b.unchanged), 0),
            func.coalesce(func.sum(b.billable), 0), func.coalesce(func.sum(b.errors), 0))
            .where(b.run_id == run_id)).one()
        return RunTotals(*(int(v) for v in row))
