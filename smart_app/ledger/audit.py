"""The append-only, hash-chained audit log: one global chain of events that `verify_chain` re-checks end to end.

Each event's hash is the SHA-256 of the UTF-8 bytes of the compact JSON array

    ["smart-app-audit/1", seq, prev_hash, at, organization_id, actor, action, subject, detail]

where `at` is ISO 8601 UTC with microseconds (`2026-11-20T17:00:00.000000Z`), `organization_id` is null when
absent, `detail` is the stored canonical JSON *text* (hashed exactly as stored), and `prev_hash` is the previous
event's hash (64 zeros for the first). `seq` is assigned by `record_event` as last seq + 1 under the chain lock,
so the chain is dense: 1, 2, 3... A gap is therefore a finding, and two writers that forked the chain would
collide on the `seq` primary key (the `hash` column is unique as well) and one would fail loudly.

What the chain detects: any edit of a stored column (hash mismatch), a deleted or inserted event (a gap in seq
or a broken prev_hash link), renumbered or reordered events (seq is hashed), a missing first event.
What it cannot detect on its own: events removed from the END of the chain (a truncated tail is a shorter
but valid chain) and a wholesale rewrite by someone who recomputes every hash after the edit (SHA-256 has no
key). Keep the last hash printed by `smart-app audit verify` somewhere else and pass it back as `anchor`: the
chain must still contain it, which detects truncation and rewrites of everything up to that point.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from smart_app.db import utcnow
from smart_app.errors import SmartAppError
from smart_app.ledger.records import AuditEventRow

# The ledger's SQLite write-lock helper (BEGIN IMMEDIATE unless this transaction already writes); reused so the
# two rooms agree on how SQLite writers are serialized.
from smart_app.ledger.writelock import _sqlite_write_lock

GENESIS_HASH = "0" * 64
HASH_FORMAT = "smart-app-audit/1"

# The vocabulary of actions; `record_event` refuses anything else so reports can rely on the names.
LAUNCH = "launch"
ENTRY_RECORDED = "entry.recorded"
ENTRY_AMENDED = "entry.amended"
ENTRY_VOIDED = "entry.voided"
TIMER_STARTED = "timer.started"
TIMER_STOPPED = "timer.stopped"
TIMER_DISCARDED = "timer.discarded"
MONTH_LOCKED = "month.locked"
CONSENT_RECORDED = "consent.recorded"
CONSENT_WITHDRAWN = "consent.withdrawn"
ATTESTATION_RECORDED = "attestation.recorded"
SCALE_RECORDED = "scale.recorded"
EVIDENCE_RECORDED = "evidence.recorded"
CARE_PLAN_DRAFTED = "care-plan.drafted"
CARE_PLAN_ESTABLISHED = "care-plan.established"
ENROLLMENT_RECORDED = "enrollment.recorded"
CLAIM_APPROVED = "claim.approved"
CLAIM_HELD = "claim.held"
WRITEBACK_SENT = "writeback.sent"
WRITEBACK_FAILED = "writeback.failed"
ORG_CHANGED = "org.changed"
KEYS_GENERATED = "keys.generated"
KEYS_ROTATED = "keys.rotated"
ROLE_GRANTED = "role.granted"
ROLE_REVOKED = "role.revoked"
CONSENT_WRITEBACK = "consent.writeback"
CLAIMS_PROPOSED = "claims.proposed"
ROLLUP_RUN = "rollup.run"
EXPORTED = "export"
LEDGER_BASELINED = "ledger.baselined"
ACTIONS = frozenset({
    LAUNCH, ENTRY_RECORDED, ENTRY_AMENDED, ENTRY_VOIDED, TIMER_STARTED, TIMER_STOPPED, TIMER_DISCARDED, MONTH_LOCKED,
    CONSENT_RECORDED, CONSENT_WITHDRAWN, ATTESTATION_RECORDED, SCALE_RECORDED, CLAIM_APPROVED, CLAIM_HELD,
    WRITEBACK_SENT, WRITEBACK_FAILED, ORG_CHANGED, KEYS_GENERATED, KEYS_ROTATED, CONSENT_WRITEBACK, CLAIMS_PROPOSED,
    ROLLUP_RUN, EXPORTED, LEDGER_BASELINED, ROLE_GRANTED, ROLE_REVOKED, EVIDENCE_RECORDED,
    CARE_PLAN_DRAFTED, CARE_PLAN_ESTABLISHED, ENROLLMENT_RECORDED,
})
# The actor of what the app does on its own (delivering the outbox, writing consents back to the EHR).
APP_ACTOR = "smart-app"
# A launch without an id_token (no openid scope granted) still has a person behind it, unnamed by the EHR.
UNKNOWN_ACTOR = "unknown user (the EHR named no fhirUser)"

# Two-key advisory lock on PostgreSQL: the space keeps it apart from the ledger's performer and month locks.
_LOCK_SPACE = "smart_app.ledger.audit"
_LOCK_KEY = "chain"
# Keys that name a credential; the audit log is readable by admins and kept for years, so none may enter it.
_SECRET_KEY = re.compile(r"token|secret|passw|assertion|private_?key|api_?key|credential|cookie", re.IGNORECASE)
# A JWT under an innocent key (an access token or client assertion pasted as a value).
_JWT_VALUE = re.compile(r"^eyJ[\w-]*\.[\w-]+\.")
# Column widths of `audit_events`, checked here so both backends refuse the same values.
_WIDTHS = {"organization_id": 64, "actor": 500, "action": 60, "subject": 500}
# Enough findings to locate any tampering; beyond this only the count grows, so memory stays flat.
MAX_PROBLEMS = 1000
_BATCH = 1000


class AuditError(SmartAppError):
    """An audit event was refused (unknown action, a secret in its detail, a value that does not fit)."""

    title = "The audit event was not recorded"


@dataclass(frozen=True)
class AuditEvent:
    """One event of the chain as stored; `detail` is the parsed canonical JSON."""

    seq: int
    at: datetime
    organization_id: str | None
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Problem:
    """One finding of `verify_chain`: `kind` is edited | missing | broken-link | bad-start | anchor-missing; for a
    ledger row (`table` and `row_id` set, `ledger.coverage`): row-edited | row-deleted | row-inserted | record-edited.
    """

    seq: int | None
    kind: str
    message: str
    table: str | None = None
    row_id: str | None = None

    def __str__(self) -> str:
        if self.table is not None:
            return f"{self.table} row {self.row_id}: {self.message}"
        return f"event {self.seq}: {self.message}" if self.seq is not None else self.message


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of walking the whole chain; `problems` holds at most MAX_PROBLEMS of `problem_count`."""

    ok: bool
    rows_checked: int
    last_seq: int | None
    last_hash: str
    problems: tuple[Problem, ...] = ()
    problem_count: int = 0
    first_bad_seq: int | None = None
    organization_events: int | None = None
    anchor_seq: int | None = None
    ledger_rows_checked: int | None = None


def canonical_json(detail: Mapping[str, Any]) -> str:
    """The one JSON text of `detail` that is stored and hashed: sorted keys, no spaces, UTF-8 kept."""
    try:
        return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"The audit detail cannot be stored as JSON: {exc}.",
                         "Pass only strings, numbers, booleans, None, lists and dicts (dates as ISO strings).") from exc


def format_at(at: datetime) -> str:
    """The timestamp as hashed: ISO 8601 in UTC with microseconds and a Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(*, seq: int, prev_hash: str, at: datetime, organization_id: str | None, actor: str, action: str,
               subject: str, detail_json: str) -> str:
    """SHA-256 (hex) of one event's canonical serialization; see the module docstring."""
    payload = [HASH_FORMAT, seq, prev_hash, format_at(at), organization_id, actor, action, subject, detail_json]
    # A JSON array marks every field's boundary, so moving text from one field to the next changes the hash.
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def command_line_actor() -> str:
    """Who runs a command: `command-line:<login name>` (the operating system's account)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        # A container without a passwd entry for its uid still ran the command.
        name = f"uid {os.getuid()}"
    return f"command-line:{name}"


def _refuse_secrets(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _SECRET_KEY.search(str(key)):
                raise AuditError(f"The audit detail has a key {where!r} that names a credential.",
                                 "Never log tokens, secrets, passwords or assertions; log an id or a fingerprint.")
            _refuse_secrets(inner, where)
    elif isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            _refuse_secrets(inner, f"{path}[{index}]")
    elif isinstance(value, str) and _JWT_VALUE.match(value):
        raise AuditError(f"The audit detail at {path!r} looks like a JWT (a token or assertion).",
                         "Log the token's id (jti) or a fingerprint instead of the token itself.")


def _check_fields(values: Mapping[str, str | None]) -> None:
    for name, width in _WIDTHS.items():
        value = values[name]
        if value is None:
            continue
        if name != "organization_id" and not value.strip():
            raise AuditError(f"The audit event's {name} is empty.", f"Say which {name} this event is about.")
        if len(value) > width:
            raise AuditError(f"The audit event's {name} is {len(value)} characters; at most {width} fit.",
                             f"Shorten the {name} or move the rest into the detail.")


def _lock_chain(session: Session) -> None:
    # Held until the caller's transaction ends, so reading the last hash and appending are one step for
    # every process. Take it after the domain writes: it is the last lock a transaction takes, so it cannot
    # deadlock with the ledger's locks, and the chain stays held for the shortest time.
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        _sqlite_write_lock(connection)
        return
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:space), hashtext(:key))"),
                       {"space": _LOCK_SPACE, "key": _LOCK_KEY})


def _to_event(row: Any) -> AuditEvent:
    return AuditEvent(seq=row.seq, at=row.at, organization_id=row.organization_id, actor=row.actor,
                      action=row.action, subject=row.subject, detail=json.loads(row.detail),
                      prev_hash=row.prev_hash, hash=row.hash)


def record_event(session: Session, *, actor: str, action: str, subject: str, detail: dict[str, Any],
                 organization_id: str | None = None, now: datetime | None = None) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the caller's work)."""
    if action not in ACTIONS:
        raise AuditError(f"Unknown audit action {action!r}.",
                         "Use one of the constants in smart_app.ledger.audit, or add the new one to ACTIONS.")
    if not isinstance(detail, Mapping):
        raise AuditError("The audit detail must be a dict.", "Wrap the value in a dict with a descriptive key.")
    _check_fields({"organization_id": organization_id, "actor": actor, "action": action, "subject": subject})
    _refuse_secrets(detail, "")
    at = now or utcnow()
    if at.tzinfo is None:
        raise AuditError("The audit event's time has no timezone.", "Pass a timezone-aware datetime.")
    # Both backends keep microseconds and UTCDateTime stores UTC, so the hashed time is exactly the stored one.
    at = at.astimezone(UTC)
    detail_json = canonical_json(detail)
    _lock_chain(session)
    last = session.execute(select(AuditEventRow.seq, AuditEventRow.hash)
                           .order_by(AuditEventRow.seq.desc()).limit(1)).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last is not None else (1, GENESIS_HASH)
    digest = event_hash(seq=seq, prev_hash=prev_hash, at=at, organization_id=organization_id, actor=actor,
                        action=action, subject=subject, detail_json=detail_json)
    row = AuditEventRow(seq=seq, at=at, organization_id=organization_id, actor=actor, action=action,
                        subject=subject, detail=detail_json, prev_hash=prev_hash, hash=digest)
    session.add(row)
    session.flush()
    return _to_event(row)


def recent_events(session: Session, limit: int = 20, organization_id: str | None = None) -> list[AuditEvent]:
    """The newest `limit` events (optionally of one organization), oldest first."""
    query = select(AuditEventRow).order_by(AuditEventRow.seq.desc()).limit(max(limit, 0))
    if organization_id is not None:
        query = query.where(AuditEventRow.organization_id == organization_id)
    return [_to_event(row) for row in reversed(session.scalars(query).all())]


def _stream(session: Session) -> Iterable[Any]:
    # Plain columns, not ORM objects, fetched in batches (a server-side cursor on PostgreSQL): a chain of
    # millions of events is checked in flat memory.
    query = (select(AuditEventRow.seq, AuditEventRow.at, AuditEventRow.organization_id, AuditEventRow.actor,
                    AuditEventRow.action, AuditEventRow.subject, AuditEventRow.detail, AuditEventRow.prev_hash,
                    AuditEventRow.hash)
             .order_by(AuditEventRow.seq).execution_options(yield_per=_BATCH))
    return session.execute(query)


def _row_problems(row: Any, prev_seq: int | None, prev_hash: str | None) -> list[Problem]:
    found: list[Problem] = []
    expected_seq = 1 if prev_seq is None else prev_seq + 1
    expected_link = GENESIS_HASH if prev_hash is None else prev_hash
    if row.seq > expected_seq:
        missing = (f"event {expected_seq} is" if row.seq == expected_seq + 1
                   else f"events {expected_seq} to {row.seq - 1} are")
        found.append(Problem(expected_seq, "missing", f"{missing} missing: deleted from the chain (the chain "
                                                      f"continues at event {row.seq})."))
    elif row.prev_hash != expected_link:
        if prev_seq is None:
            found.append(Problem(row.seq, "bad-start", "the chain does not start here: the first event should "
                                                       "link to 64 zeros, so earlier events were removed."))
        else:
            found.append(Problem(row.seq, "broken-link",
                                 f"does not link to event {prev_seq}: an event was inserted or deleted here, "
                                 f"or event {prev_seq} was rewritten."))
    recomputed = event_hash(seq=row.seq, prev_hash=row.prev_hash, at=row.at, organization_id=row.organization_id,
                            actor=row.actor, action=row.action, subject=row.subject, detail_json=row.detail)
    if recomputed != row.hash:
        found.append(Problem(row.seq, "edited", "was changed after it was written: its time, organization, actor, "
                                                "action, subject, detail or number no longer match its hash."))
    return found


def verify_chain(session: Session, organization_id: str | None = None, *, anchor: str | None = None,
                 on_event: Callable[[int, str], None] | None = None) -> VerifyReport:
    """Walk the whole chain in seq order, re-checking every hash and link; `anchor` is a hash kept elsewhere.

    Organizations share one chain, so the whole chain is always verified (a deleted event shows at its successor,
    whichever organization that belongs to); `organization_id` only adds that organization's event count.
    `on_event(seq, detail_json)` sees every event as it streams by (`ledger.coverage` checks ledger rows so).
    """
    problems: list[Problem] = []
    count = checked = org_events = 0
    first_bad: int | None = None
    prev_seq: int | None = None
    prev_hash: str | None = None
    anchor_seq: int | None = None
    for row in _stream(session):
        checked += 1
        if organization_id is not None and row.organization_id == organization_id:
            org_events += 1
        if anchor is not None and row.hash == anchor:
            anchor_seq = row.seq
        for problem in _row_problems(row, prev_seq, prev_hash):
            count += 1
            if problem.seq is not None and (first_bad is None or problem.seq < first_bad):
                first_bad = problem.seq
            if len(problems) < MAX_PROBLEMS:
                problems.append(problem)
        prev_seq, prev_hash = row.seq, row.hash
        if on_event is not None:
            on_event(row.seq, row.detail)
    if anchor is not None and anchor_seq is None:
        count += 1
        problems.append(Problem(None, "anchor-missing", f"the kept hash {anchor} is not in the chain: events were "
                                                        "removed from its end or its history was rewritten."))
    return VerifyReport(ok=count == 0, rows_checked=checked, last_seq=prev_seq, last_hash=prev_hash or GENESIS_HASH,
                        problems=tuple(problems), problem_count=count, first_bad_seq=first_bad,
                        organization_events=org_events if organization_id is not None else None,
                        anchor_seq=anchor_seq)
