"""The durable write-back outbox: resources for the EHR, written with the decision, delivered exactly once.

Rows (`OutboxRow`) are inserted by `enqueue` inside the caller's transaction, so a decision and what it must
send commit or vanish together. Each row carries a deterministic business identifier (`system|value`,
unique per organization), which makes enqueueing idempotent and lets every send be idempotent too.

`deliver` is the worker. Leasing, so two workers (processes, or threads with their own event loops) never
send one row at the same time:
- it reads the due rows (pending, `next_attempt_at <= now`, lease free or expired), then leases each
  one with a conditional `UPDATE ... SET leased_until = now + lease WHERE id = :id AND status = 'pending'
  AND (leased_until IS NULL OR leased_until <= now) AND next_attempt_at <= now`; only a rowcount of 1
  means the row is ours. Rows are leased a group at a time, just before they are sent, so a lease
  covers one request rather than a whole run.
- the lease's end instant is the fencing token: every outcome is written with `WHERE id = :id AND
  status = 'pending' AND leased_until = :token`, so a worker whose lease expired and was taken over
  cannot overwrite the newer worker's outcome. A worker that dies leaves its lease to expire; the row
  is then picked up again, and the idempotent send below finds what the dead worker may have created.

Sending, per what the EHR offers (`EhrCapabilities`):
- a type it does not accept (no create; no update for a payload that carries an `id`): `not-accepted`,
  no request; billers get it from the export and the biller page;
- transactions and conditional create for the types: up to `batch_size` rows (`TRANSACTION_ENTRIES`, 8, by
  default: Medplum's limit) in one transaction Bundle,
  each entry `POST` with `request.ifNoneExist`, all or nothing; a payload with an `id` (an update) is sent
  alone as a `PUT`, so a refused update never takes creations down with it;
- otherwise per row, `ehr.consent_writeback.create_once`: conditional create (If-None-Exist) where
  offered, else a search by identifier (results verified to carry it) and a create only when absent.
References between rows of one patient-month are `urn:uuid:` fullUrls (UUIDv5 of the identifier, as
`billing.fhir_resources.full_url` makes them): inside one transaction the EHR resolves them; otherwise
they are rewritten to `Type/<id>` once the target is delivered, and the row waits until then.

Outcomes: success stores `fhir_id`, status `done` (nothing sends it again). Timeouts, transport errors,
5xx, 408 and 429 keep the row pending with attempts + 1 and `next_attempt_at = now + min(base *
2**(attempts before this one), 15 min)` and `last_error`. When the EHR asks the app to slow down (429, or
a 503 with `Retry-After`), the row waits at least what `Retry-After` names (at most a day), and the run
stops there: every other due row of the run is deferred to the same instant without an attempt counted,
and the report's `paused_until` says until when. Other 4xx: `failed`, with the EHR's
OperationOutcome and what to fix; `retry_failed` puts such rows back once fixed. 401: the rows stay
pending untouched (lease released) and SessionExpired is raised for the caller to re-authorize.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.models import OutboxRow
from smart_app.billing.plan import CHOICES
from smart_app.db import in_thread, rows_changed, transaction, utcnow
from smart_app.dialect_upsert import insert_new
from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.consent_writeback import (
    DuplicateCheckFailed,
    carries_identifier,
    create_once,
    if_none_exist_criteria,
)
from smart_app.ehr.failures import classify_error
from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import EhrError, SessionExpired
from smart_app.ledger.audit import APP_ACTOR, WRITEBACK_FAILED, WRITEBACK_SENT, record_event
from smart_app.statuses import OutboxStatus

# The purpose of an update retiring what a replaced claim version delivered (billing.supersede).
RETIRING = "retire"
# Rows per transaction Bundle. Medplum refuses a transaction of more than 8 entries that needs serializable
# isolation, which every conditional create does ("Transaction requires strict isolation but has too many
# entries", @medplum/fhir-router 5.2); larger Bundles failed there whole (issue 15).
TRANSACTION_ENTRIES = 8
MAX_BACKOFF_SECONDS = 15 * 60
# The longest Retry-After honoured: a larger (or buggy) value must not park the outbox for weeks.
MAX_RETRY_AFTER_SECONDS = 24 * 60 * 60
DEFAULT_BACKOFF_BASE = 2.0
_STATUS_CODE = re.compile(r"^\s*(\d{3})")
_ENTRY_INDEX = re.compile(r"\bentry (\d+)\b")
URN_UUID = "urn:uuid:"


@dataclass(frozen=True)
class OutgoingResource:
    """One resource to send, with its business identifier (carried in `payload.identifier` by a create).

    A payload with an `id` is sent as an update (PUT) of that resource; its identifier here only has to be
    unique in the outbox (for example `urn:smart-app:claim-correction|...`).
    """

    resource_type: str
    purpose: str
    identifier_system: str
    identifier_value: str
    payload: dict

    @property
    def identifier(self) -> str:
        """`system|value`, the outbox's identifier column and the FHIR token search form."""
        return f"{self.identifier_system}|{self.identifier_value}"


@dataclass(frozen=True)
class DeliveryReport:
    """What one `deliver` run did, counted in rows."""

    sent: int = 0  # created in the EHR by this run
    already_there: int = 0  # the EHR already held it (an earlier run's answer was lost): stored as done
    retried: int = 0  # a transient failure: still pending, with a later next_attempt_at
    failed: int = 0  # refused (4xx): needs a person, then `retry_failed`
    not_accepted: int = 0  # the EHR takes no such resource from apps
    paused_until: datetime | None = None  # the EHR asked the app to slow down: nothing is sent before this

    @property
    def delivered(self) -> int:
        """Rows now done."""
        return self.sent + self.already_there


@dataclass(frozen=True)
class OutboxView:
    """One outbox row as the biller page shows it."""

    id: str
    claim_id: str | None
    resource_type: str
    purpose: str
    status: OutboxStatus
    attempts: int
    last_error: str
    fhir_id: str | None
    updated_at: datetime


def full_url_of(identifier: str) -> str:
    """The `urn:uuid:` a resource with this `system|value` identifier has in a transaction Bundle."""
    return f"{URN_UUID}{uuid.uuid5(uuid.NAMESPACE_URL, identifier)}"


def backoff(attempts_before: int, base: float = DEFAULT_BACKOFF_BASE) -> timedelta:
    """The wait after a failed attempt: base, 2 base, 4 base ... at most 15 minutes."""
    return timedelta(seconds=min(base * 2 ** min(attempts_before, 32), MAX_BACKOFF_SECONDS))


# ---------------------------------------------------------------- enqueue


def _check_resource(resource: OutgoingResource) -> None:
    payload = resource.payload
    if not isinstance(payload, dict) or payload.get("resourceType") != resource.resource_type:
        raise ValueError(f"the payload of a {resource.resource_type} outbox row is not a {resource.resource_type}")
    if not resource.identifier_system or not resource.identifier_value:
        raise ValueError(f"the {resource.resource_type} has no business identifier")
    # An update (a payload with an `id`, e.g. the entered-in-error copy of a replaced claim) keeps the resource's
    # own identifier; the outbox identifier only names the update, once.
    if not payload.get("id") and not carries_identifier(payload, resource.identifier_system,
                                                        resource.identifier_value):
        raise ValueError(f"the {resource.resource_type} payload does not carry its identifier {resource.identifier}")
    if len(resource.identifier) > 300 or not 0 < len(resource.purpose) <= 40 or len(resource.resource_type) > 40:
        raise ValueError(f"identifier, purpose or type too long for the outbox: {resource.identifier}")


def enqueue(db: Session, *, organization_id: str, claim_id: str | None, patient_id: str, month: str,
            resources: Sequence[OutgoingResource], now: datetime | None = None) -> int:
    """Add one pending row per resource in the caller's transaction; how many rows were added.

    A resource whose identifier the organization's outbox already holds (in any status) is skipped by the
    unique constraint (INSERT ... ON CONFLICT DO NOTHING on both SQLite and PostgreSQL, so concurrent
    enqueues of the same resource also add one row): enqueueing twice adds nothing.
    """
    now = now or utcnow()
    added = 0
    for index, resource in enumerate(resources):
        _check_resource(resource)
        added += insert_new(db, OutboxRow, dict(
            id=str(uuid.uuid4()), organization_id=organization_id, claim_id=claim_id, patient_id=patient_id,
            month=month, resource_type=resource.resource_type, purpose=resource.purpose,
            identifier=resource.identifier, payload=resource.payload, status=OutboxStatus.PENDING, attempts=0,
            next_attempt_at=now, leased_until=None, last_error="", fhir_id=None,
            # A microsecond apart, so rows are sent in the order given (targets of references first).
            created_at=now + timedelta(microseconds=index), updated_at=now,
        ), ("organization_id", "identifier"), returning=OutboxRow.id)
    return added


# ---------------------------------------------------------------- leasing and outcomes


@dataclass
class _Lease:
    row: OutboxRow
    token: datetime
    # What to send: the payload with references to delivered rows rewritten.
    payload: dict = field(default_factory=dict)


def _due(sessions: sessionmaker, organization_id: str, now: datetime, limit: int,
         only: Sequence[str] | None = None) -> list[tuple[str, str, bool]]:
    """(id, resource type, whether the payload has an id) of the due rows (of `only`, when given), oldest first."""
    query = select(OutboxRow.id, OutboxRow.resource_type, OutboxRow.payload).where(
        OutboxRow.organization_id == organization_id, OutboxRow.status == OutboxStatus.PENDING,
        OutboxRow.next_attempt_at <= now,
        or_(OutboxRow.leased_until.is_(None), OutboxRow.leased_until <= now))
    if only is not None:
        query = query.where(OutboxRow.id.in_(list(only)))
    with sessions() as db:
        rows = db.execute(query.order_by(OutboxRow.created_at, OutboxRow.id).limit(limit)).all()
    return [(r.id, r.resource_type, bool((r.payload or {}).get("id"))) for r in rows]


def _lease(sessions: sessionmaker, ids: Sequence[str], now: datetime, seconds: int) -> list[_Lease]:
    """Lease what can be leased of `ids`; the rows as they are now that they are ours."""
    token = now + timedelta(seconds=seconds)
    # The transaction starts with the UPDATE (no read before it), so on SQLite it waits for the write lock
    # instead of failing on a stale snapshot; on PostgreSQL a concurrent lessee blocks on the row, then
    # re-checks the WHERE clause and updates nothing.
    with transaction(sessions) as db:
        won = [row_id for row_id in ids if rows_changed(db.execute(
            update(OutboxRow).where(
                OutboxRow.id == row_id, OutboxRow.status == OutboxStatus.PENDING, OutboxRow.next_attempt_at <= now,
                or_(OutboxRow.leased_until.is_(None), OutboxRow.leased_until <= now))
            .values(leased_until=token, updated_at=now)
            .execution_options(synchronize_session=False))) == 1]
        if not won:
            return []
        rows = {r.id: r for r in db.scalars(select(OutboxRow).where(OutboxRow.id.in_(won))
                                            .execution_options(populate_existing=True))}
    return [_Lease(rows[i], token, copy.deepcopy(rows[i].payload)) for i in won]


class _Keep(StrEnum):
    """Outcomes of an attempt that leave the row pending."""

    RETRY = "retry"  # counted as an attempt, sent again after the backoff (or the EHR's wait)
    RELEASE = "release"  # only the lease is freed: the row waits for the row its references point at


@dataclass(frozen=True)
class _Outcome:
    status: OutboxStatus | _Keep
    text: str = ""
    fhir_id: str | None = None
    created: bool = False
    throttled: bool = False  # the EHR asked the app to slow down
    wait: float | None = None  # seconds it asked for (Retry-After)


def retry_delay(attempts_before: int, asked_seconds: float | None, base: float = DEFAULT_BACKOFF_BASE) -> timedelta:
    """The wait before the next try: the backoff, or what the EHR asked for (Retry-After, at most a day) if longer."""
    delay = backoff(attempts_before, base)
    if asked_seconds is not None:
        delay = max(delay, timedelta(seconds=min(asked_seconds, MAX_RETRY_AFTER_SECONDS)))
    return delay


def _finish(sessions: sessionmaker, results: Iterable[tuple[_Lease, _Outcome]], now: datetime,
            base: float, tally: dict[str, int]) -> datetime | None:
    """Record outcomes, each only if the lease is still ours; count them. When the EHR asked the app to slow
    down, the instant the throttled rows wait until (the latest of them)."""
    paused_until: datetime | None = None
    settled: list[tuple[OutboxRow, _Outcome]] = []
    with transaction(sessions) as db:
        for lease, outcome in results:
            row = lease.row
            values: dict = {"leased_until": None, "updated_at": now}
            # "release" only frees the lease (the row waits for a reference target): nothing else changes.
            if outcome.status == _Keep.RETRY:
                resume = now + retry_delay(row.attempts, outcome.wait, base)
                values.update(attempts=row.attempts + 1, next_attempt_at=resume, last_error=outcome.text)
                if outcome.throttled:
                    paused_until = max(paused_until or resume, resume)
            elif outcome.status == OutboxStatus.DONE:
                values.update(status=OutboxStatus.DONE, attempts=row.attempts + 1, fhir_id=outcome.fhir_id,
                              last_error="")
            elif outcome.status != _Keep.RELEASE:
                values.update(status=outcome.status, last_error=outcome.text,
                              attempts=row.attempts + (1 if outcome.status == OutboxStatus.FAILED else 0))
            result = db.execute(
                update(OutboxRow).where(OutboxRow.id == row.id, OutboxRow.status == OutboxStatus.PENDING,
                                        OutboxRow.leased_until == lease.token)
                .values(**values).execution_options(synchronize_session=False))
            if rows_changed(result) != 1:
                continue  # the lease expired and another worker took the row over; its outcome stands
            if outcome.status in (OutboxStatus.DONE, OutboxStatus.FAILED, OutboxStatus.NOT_ACCEPTED):
                settled.append((row, outcome))
            key = {_Keep.RETRY: "retried", OutboxStatus.DONE: "sent" if outcome.created else "already_there",
                   OutboxStatus.FAILED: "failed", OutboxStatus.NOT_ACCEPTED: "not_accepted"}.get(outcome.status)
            if key:
                tally[key] += 1
        # After the row updates: the audit chain's lock is the last one a transaction takes.
        for row, outcome in settled:
            _audit_delivery(db, row, outcome, now)
    return paused_until


def _audit_delivery(db: Session, row: OutboxRow, outcome: _Outcome, now: datetime) -> None:
    """A resource's final outcome with the EHR (sent, refused, not accepted) as an audit event."""
    subject = f"{row.resource_type}/{outcome.fhir_id}" if outcome.fhir_id else f"Outbox/{row.id}"
    sent = outcome.status == OutboxStatus.DONE
    record_event(db, actor=APP_ACTOR, action=WRITEBACK_SENT if sent else WRITEBACK_FAILED,
                 subject=subject, organization_id=row.organization_id, now=now,
                 detail={"patient": row.patient_id, "month": row.month, "claim": row.claim_id, "outbox": row.id,
                         "purpose": row.purpose, "status": outcome.status, "already_there": not outcome.created
                         if outcome.status == OutboxStatus.DONE else None})


def _defer(sessions: sessionmaker, ids: Sequence[str], until: datetime, now: datetime) -> None:
    """Move due rows not yet tried in this run to `until`: no attempt is counted, no lease is taken over."""
    if not ids:
        return
    with transaction(sessions) as db:
        for chunk in range(0, len(ids), 500):
            db.execute(update(OutboxRow).where(
                OutboxRow.id.in_(ids[chunk:chunk + 500]), OutboxRow.status == OutboxStatus.PENDING,
                OutboxRow.next_attempt_at < until,
                or_(OutboxRow.leased_until.is_(None), OutboxRow.leased_until <= now))
                .values(next_attempt_at=until, updated_at=now).execution_options(synchronize_session=False))


# ---------------------------------------------------------------- references between rows


def _urn_references(node: object, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value.startswith(URN_UUID):
                found.add(value)
            else:
                _urn_references(value, found)
    elif isinstance(node, list):
        for item in node:
            _urn_references(item, found)
    return found


def _rewrite(node: object, targets: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in targets:
                node[key] = targets[value]
            else:
                _rewrite(value, targets)
    elif isinstance(node, list):
        for item in node:
            _rewrite(item, targets)


def _resolve(sessions: sessionmaker, leases: list[_Lease], in_bundle: bool
             ) -> tuple[list[_Lease], list[tuple[_Lease, _Outcome]]]:
    """Rewrite references to delivered rows; set aside rows whose targets are not delivered yet.

    Returns the leases to send now and the outcomes of the others (release: wait for the target;
    failed: the target was refused or is not in the outbox).
    """
    wanted = {lease.row.id: _urn_references(lease.payload, set()) for lease in leases}
    if not any(wanted.values()):
        return leases, []
    first = leases[0].row
    with sessions() as db:
        others = db.execute(select(OutboxRow.id, OutboxRow.identifier, OutboxRow.resource_type, OutboxRow.purpose,
                                   OutboxRow.status, OutboxRow.fhir_id).where(
            OutboxRow.organization_id == first.organization_id,
            or_(*(and_(OutboxRow.patient_id == lease.row.patient_id, OutboxRow.month == lease.row.month)
                  for lease in leases)))).all()
    by_urn = {full_url_of(o.identifier): o for o in others}
    sending = {lease.row.id: lease for lease in leases}
    set_aside: list[tuple[_Lease, _Outcome]] = []
    changed = True
    while changed:  # a row set aside may take rows that point at it along
        changed = False
        in_group = {full_url_of(lease.row.identifier) for lease in sending.values()} if in_bundle else set()
        for row_id, lease in list(sending.items()):
            targets: dict[str, str] = {}
            outcome = None
            for urn in sorted(wanted[row_id]):
                target = by_urn.get(urn)
                if urn in in_group:
                    continue
                if target is not None and target.status == OutboxStatus.DONE and target.fhir_id:
                    targets[urn] = f"{target.resource_type}/{target.fhir_id}"
                elif target is not None and target.status == OutboxStatus.PENDING:
                    outcome = _Outcome(_Keep.RELEASE)
                else:
                    what = (f"the {target.purpose} {target.resource_type}, which is {target.status}"
                            if target is not None else f"{urn}, which is not in the outbox")
                    outcome = _Outcome(OutboxStatus.FAILED,
                                       f"This {lease.row.resource_type} points at {what}. What to fix: "
                                       "deliver that resource first (see its row), then retry this one.")
                    break
            if outcome is not None:
                set_aside.append((lease, outcome))
                del sending[row_id]
                changed = True
            else:
                _rewrite(lease.payload, targets)
    return list(sending.values()), set_aside


# ---------------------------------------------------------------- sending


def _hint(row: OutboxRow, status: int | None) -> str:
    kind, purpose = row.resource_type, row.purpose
    alternative = next((t for t in CHOICES.get(purpose, ()) if t != kind), "none")
    reroute = (f'set {purpose} = "{alternative}" under [writeback] in the organization file'
               if purpose in CHOICES else "")
    if status == 403:
        return (f"grant the app's registration permission to write {kind} (for example system/{kind}.c), "
                "then retry the row.")
    if status in (404, 405):
        return f"the EHR does not take {kind} from apps: {reroute or 'billers get it from the export'}."
    if status in (409, 412):
        return (f"the EHR holds more than one {kind} with identifier {row.identifier}; ask the EHR administrator "
                "to remove the duplicate, then retry the row.")
    which = " (some EHRs accept only vital signs and labs)" if kind == "Observation" else ""
    return ("correct what the EHR names above (patient, codes, references) and retry the row"
            + (f"; if the EHR does not take this {kind} from apps{which}, {reroute}" if reroute else "") + ".")


def _refusal(row: OutboxRow, status: int, outcome: str, *, together: int = 1) -> str:
    what = f"the transaction of {together} resources" if together > 1 else f"the {row.resource_type}"
    nothing = " Nothing in it was written." if together > 1 else ""
    return (f"The EHR refused {what} (HTTP {status}): {outcome or 'no reason given'}.{nothing} "
            f"What to fix: {_hint(row, status)}")


def _classify(row: OutboxRow, exc: EhrError, *, together: int = 1) -> _Outcome:
    failure = classify_error(exc)
    if failure.throttled:
        return _Outcome(_Keep.RETRY, exc.message, throttled=True, wait=failure.retry_after)
    if failure.temporary or failure.http_status is None:
        return _Outcome(_Keep.RETRY, exc.message)
    return _Outcome(OutboxStatus.FAILED,
                    _refusal(row, failure.http_status, exc.outcome or exc.message, together=together))


def _not_accepted(row: OutboxRow, interaction: str) -> _Outcome:
    if row.purpose == RETIRING:
        # The replaced version's resource stays live in the EHR: a person has to retire it there.
        return _Outcome(OutboxStatus.NOT_ACCEPTED,
                        f"This EHR does not let apps update {row.resource_type}, so the replaced "
                        f"version's {row.resource_type}/{row.payload.get('id')} is still live there. "
                        f"What to do: mark it {row.payload.get('status')} in the EHR by hand, so it "
                        "is not billed or read alongside the corrected one.")
    return _Outcome(OutboxStatus.NOT_ACCEPTED, f"This EHR does not accept {row.resource_type} {interaction} from apps; "
                                               "billers get it from the export and the biller page.")


async def _post_json(client: FhirClient, method: str, path: str, body: dict, what: str) -> dict:
    """PUT a resource or POST a Bundle; EhrError keeps the EHR's status and OperationOutcome."""
    status, answer, _ = await client.write(method, path, body, what)
    if not isinstance(answer, dict):
        raise EhrError(f"The EHR answered HTTP {status} without a resource when writing {what}.",
                       "The app keeps the record.", http_status=status)
    return answer


def _entry_result(entry: object) -> tuple[str | None, bool] | None:
    """(fhir_id, created) from a transaction-response entry, or None when it says neither."""
    if not isinstance(entry, dict):
        return None
    response = entry.get("response") or {}
    match = _STATUS_CODE.match(str(response.get("status", "")))
    if not match or not match.group(1).startswith("2"):
        return None
    found = entry.get("resource")
    resource: dict = found if isinstance(found, dict) else {}
    fhir_id = resource.get("id")
    if not fhir_id:
        parts = str(response.get("location") or "").split("/_history/")[0].rstrip("/").split("/")
        fhir_id = parts[-1] if len(parts) >= 2 and parts[-1] else None
    return (str(fhir_id) if fhir_id else None), match.group(1) == "201"


async def _send_transaction(client: FhirClient, leases: list[_Lease]) -> list[_Outcome]:
    entries: list[dict[str, object]] = []
    for lease in leases:
        row, payload = lease.row, lease.payload
        if payload.get("id"):
            entries.append({"resource": payload, "request": {"method": "PUT",
                                                             "url": f"{row.resource_type}/{payload['id']}"}})
        else:
            system, _, value = row.identifier.partition("|")
            entries.append({"fullUrl": full_url_of(row.identifier), "resource": payload,
                            "request": {"method": "POST", "url": row.resource_type,
                                        "ifNoneExist": if_none_exist_criteria(system, value)}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    try:
        answer = await _post_json(client, "POST", "", bundle, f"a transaction of {len(leases)} resources")
    except EhrError as exc:
        culprit = leases[0].row
        found = _ENTRY_INDEX.search(exc.outcome)
        if found and int(found.group(1)) < len(leases):
            culprit = leases[int(found.group(1))].row
        outcome = _classify(culprit, exc, together=len(leases))
        return [outcome] * len(leases)
    results = [_entry_result(e) for e in answer.get("entry") or []]
    if answer.get("resourceType") != "Bundle" or len(results) != len(leases) or any(
            r is None or r[0] is None for r in results):
        # The EHR committed something but its answer cannot be read: the next attempt's conditional creates
        # find what was written.
        unreadable = _Outcome(_Keep.RETRY, "The EHR answered the transaction with a Bundle the app cannot read.")
        return [unreadable] * len(leases)
    return [_Outcome(OutboxStatus.DONE, fhir_id=r[0], created=r[1]) for r in results if r is not None]


async def _send_one(client: FhirClient, caps: EhrCapabilities, lease: _Lease) -> _Outcome:
    row, payload = lease.row, lease.payload
    try:
        if payload.get("id"):
            # An update of a resource the EHR already has (e.g. the entered-in-error copy of a replaced
            # claim): idempotent by nature.
            stored = await _post_json(client, "PUT", f"{row.resource_type}/{payload['id']}", payload,
                                      f"{row.resource_type}/{payload['id']}")
            return _Outcome(OutboxStatus.DONE, fhir_id=str(stored.get("id") or payload["id"]), created=True)
        system, _, value = row.identifier.partition("|")
        result = await create_once(client, caps, row.resource_type, payload, system, value)
    except DuplicateCheckFailed as exc:
        return _Outcome(_Keep.RETRY, f"Could not check whether the EHR already has this {row.resource_type} "
                                 f"({exc.message}); nothing was created.",
                        throttled=exc.retry_after is not None, wait=exc.retry_after)
    except EhrError as exc:
        return _classify(row, exc)
    if not result.fhir_id:
        return _Outcome(_Keep.RETRY, f"The EHR did not say which {row.resource_type} it holds.")
    return _Outcome(OutboxStatus.DONE, fhir_id=result.fhir_id, created=result.created)


def _in_transaction(caps: EhrCapabilities, resource_type: str, payload_has_id: bool) -> bool:
    # Updates (retiring what a corrected claim replaced) go one by one: an EHR refusing one must not take the
    # new claim's creations down with it, as a refused entry does to its whole transaction.
    return caps.transaction and not payload_has_id and resource_type in caps.conditional_create


async def deliver(sessions: sessionmaker, client: FhirClient, caps: EhrCapabilities, organization_id: str, *,
                  limit: int = 200, now: datetime | None = None, lease_seconds: int = 60,
                  batch_size: int = TRANSACTION_ENTRIES,
                  backoff_base: float = DEFAULT_BACKOFF_BASE, only: Sequence[str] | None = None) -> DeliveryReport:
    """Send up to `limit` due rows of the organization (of the row ids `only`, when given) to the EHR; see the
    module docstring.

    `now` fixes the clock (tests); otherwise each step reads the time. Raises SessionExpired when the EHR
    refuses the authorization (401): the rows stay pending, nothing is marked failed.
    """
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    tally = {"sent": 0, "already_there": 0, "retried": 0, "failed": 0, "not_accepted": 0}
    # Every database step runs in the thread pool: a delivery pass started from a web request never holds the loop.
    due = await in_thread(_due, sessions, organization_id, clock(), limit, only)
    bundled = {row_id for row_id, kind, has_id in due if _in_transaction(caps, kind, has_id)}
    size = max(batch_size, 1)
    waiting = [row_id for row_id, _, _ in due]
    while waiting:
        in_bundle = [i for i in waiting if i in bundled]
        groups = [in_bundle[i:i + size] for i in range(0, len(in_bundle), size)]
        groups += [[i] for i in waiting if i not in bundled]
        before = dict(tally)
        released: list[str] = []
        for n, group in enumerate(groups):
            freed, paused_until = await _deliver_group(sessions, client, caps, group, clock, lease_seconds,
                                                       backoff_base, tally, in_bundle=group[0] in bundled)
            released += freed
            if paused_until is not None:
                # The EHR asked the app to slow down: sending the rest now would only be refused again.
                await in_thread(_defer, sessions, released + [i for g in groups[n + 1:] for i in g], paused_until,
                                clock())
                return _report(tally, paused_until)
        if tally == before:
            break  # rows waiting for a reference target that was not delivered wait for the next run
        waiting = released
    return _report(tally)


def _report(tally: dict[str, int], paused_until: datetime | None = None) -> DeliveryReport:
    return DeliveryReport(sent=tally["sent"], already_there=tally["already_there"], retried=tally["retried"],
                          failed=tally["failed"], not_accepted=tally["not_accepted"], paused_until=paused_until)


async def _deliver_group(sessions: sessionmaker, client: FhirClient, caps: EhrCapabilities, ids: list[str],
                         clock: Callable[[], datetime], lease_seconds: int, base: float, tally: dict[str, int], *,
                         in_bundle: bool) -> tuple[list[str], datetime | None]:
    """Lease, send and record one group; the ids released to wait for a reference target, and the instant
    to pause the run until when the EHR asked the app to slow down."""
    leases = await in_thread(_lease, sessions, ids, clock(), lease_seconds)
    if not leases:
        return [], None
    results: list[tuple[_Lease, _Outcome]] = []
    sendable = []
    for lease in leases:
        interaction = "update" if lease.payload.get("id") else "create"
        if caps.can(lease.row.resource_type, interaction):
            sendable.append(lease)
        else:
            results.append((lease, _not_accepted(lease.row, interaction)))
    sendable, set_aside = await in_thread(_resolve, sessions, sendable, in_bundle) if sendable else ([], [])
    results += set_aside
    try:
        if sendable and in_bundle:
            results += zip(sendable, await _send_transaction(client, sendable), strict=True)
        else:
            for lease in sendable:
                results.append((lease, await _send_one(client, caps, lease)))
    except SessionExpired:
        handled = {lease.row.id for lease, _ in results}
        results += [(lease, _Outcome(_Keep.RELEASE)) for lease in leases if lease.row.id not in handled]
        await in_thread(_finish, sessions, results, clock(), base, tally)
        raise
    paused_until = await in_thread(_finish, sessions, results, clock(), base, tally)
    return [lease.row.id for lease, outcome in results if outcome.status == _Keep.RELEASE], paused_until


# ---------------------------------------------------------------- for billers and admins


def retry_failed(db: Session, organization_id: str, row_ids: Iterable[str], now: datetime | None = None) -> int:
    """Put failed rows back to pending, due now, after the cause was fixed; how many were."""
    ids = list(row_ids)
    if not ids:
        return 0
    now = now or utcnow()
    result = db.execute(
        update(OutboxRow).where(OutboxRow.organization_id == organization_id, OutboxRow.id.in_(ids),
                                OutboxRow.status == OutboxStatus.FAILED)
        .values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now, leased_until=None, updated_at=now,
                last_error="Put back to pending after: " + OutboxRow.last_error)
        .execution_options(synchronize_session=False))
    return rows_changed(result)


def _view(row: OutboxRow) -> OutboxView:
    return OutboxView(row.id, row.claim_id, row.resource_type, row.purpose, row.status, row.attempts,
                      row.last_error, row.fhir_id, row.updated_at)


def deliveries_for_claims(db: Session, claim_ids: Iterable[str]) -> dict[str, list[OutboxView]]:
    """Every requested claim id -> its outbox rows (oldest first; an empty list when it has none)."""
    ids = list(dict.fromkeys(claim_ids))
    found: dict[str, list[OutboxView]] = {claim_id: [] for claim_id in ids}
    if ids:
        for row in db.scalars(select(OutboxRow).where(OutboxRow.claim_id.in_(ids))
                              .order_by(OutboxRow.created_at, OutboxRow.id)):
            found[row.claim_id or ""].append(_view(row))
    return found


def outbox_rows(db: Session, organization_id: str, *, month: str | None = None,
                status: OutboxStatus | None = None) -> list[OutboxView]:
    """The organization's rows (of one month, of one status), oldest first."""
    query = select(OutboxRow).where(OutboxRow.organization_id == organization_id)
    if month:
        query = query.where(OutboxRow.month == month)
    if status:
        query = query.where(OutboxRow.status == status)
    return [_view(r) for r in db.scalars(query.order_by(OutboxRow.created_at, OutboxRow.id))]


def outbox_summary(db: Session, organization_id: str, month: str | None) -> dict[OutboxStatus, int]:
    """Rows per status (every status present, zero when none) for the organization's month (None: all)."""
    query = select(OutboxRow.status, func.count()).where(OutboxRow.organization_id == organization_id)
    if month:
        query = query.where(OutboxRow.month == month)
    counts = dict.fromkeys(OutboxStatus, 0)
    for status, count in db.execute(query.group_by(OutboxRow.status)):
        counts[status] = int(count)
    return counts
