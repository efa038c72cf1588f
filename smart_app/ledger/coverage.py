"""The ledger inside the audit chain: every row the billing depends on is vouched for by an event.

Covered tables: time entries (with amendments and voids), timers, consents, chronicity attestations, rating
scales, claim versions, recorded evidence, care plans with their versions, enrollment events. Every write of such
a row appends, in the same transaction, an audit event whose detail lists `covers`: `[table, row id, digest]` for
each row it inserted or changed; `audit_coverage` keeps, per row, the newest such event (`seq`) and digest. A row's
digest is the SHA-256 of the UTF-8 bytes of the canonical JSON (`audit.canonical_json`: sorted keys, no spaces) of

    {"format": "smart-app-row/1", "table": table, "row": {column: value, ...}}

over every column, datetimes as the audit chain writes them (UTC, microseconds, Z), dates ISO, JSON columns as
their JSON; a column added to a covered table later (`LATE_COLUMNS`) is left out while NULL.

`verify` walks the chain (`audit.verify_chain`) and checks, in flat memory:
- each covered row against its `audit_coverage` record (a changed column: row-edited; no record: row-inserted);
- each record against a row (no row: row-deleted);
- each record against the event it names, and each event's `covers` against the records (a record changed,
  added or removed together with its row: record-edited, row-inserted, row-deleted).
So a row edited, deleted or inserted with SQL is named (table and id), even when its `audit_coverage` record
was edited to match; only a rewrite of the chain itself needs the anchor (`audit.py`).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, and_, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from smart_app.db import Base, import_models
from smart_app.errors import SmartAppError
from smart_app.ledger.audit import (
    LEDGER_BASELINED,
    MAX_PROBLEMS,
    AuditEvent,
    Problem,
    VerifyReport,
    canonical_json,
    format_at,
    record_event,
    verify_chain,
)
from smart_app.ledger.records import AuditCoverageRow, AuditEventRow

ROW_FORMAT = "smart-app-row/1"
# Every table whose rows the billing rests on; each has a string primary key `id`.
COVERED_TABLES = ("time_entries", "timers", "consents", "chronic_attestations", "rating_scales", "claims",
                  "recorded_evidence", "care_plans", "care_plan_versions", "enrollment_events")
COVERS_KEY = "covers"
# Columns added to a covered table after rows were written: left out of a row's digest while NULL, so the rows
# written before the column keep the digest their audit event recorded.
LATE_COLUMNS: dict[str, frozenset[str]] = {"rating_scales": frozenset({"items"})}
_BATCH = 1000
_LOOKUP = 500


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def row_digest(table: str, values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a row's canonical content; see the module docstring."""
    late = LATE_COLUMNS.get(table, frozenset())
    content = {name: _plain(value) for name, value in values.items() if not (value is None and name in late)}
    return hashlib.sha256(canonical_json({"format": ROW_FORMAT, "table": table, "row": content})
                          .encode("utf-8")).hexdigest()


def _table(name: str) -> Table:
    import_models()
    return Base.metadata.tables[name]


def _covered(row: Base) -> tuple[str, str, str]:
    table = row.__table__.name  # type: ignore[attr-defined]
    if table not in COVERED_TABLES:
        raise SmartAppError(f"Rows of {table!r} are not covered by the audit chain.",
                            f"Cover only rows of {', '.join(COVERED_TABLES)}, or add the table to COVERED_TABLES.")
    values = {column.name: getattr(row, column.key) for column in row.__mapper__.columns}
    return table, str(values["id"]), row_digest(table, values)


def _upsert(dialect: Any) -> Any:
    statement = dialect.insert(AuditCoverageRow)
    return statement.on_conflict_do_update(index_elements=["table_name", "row_id"],
                                           set_={"seq": statement.excluded.seq, "digest": statement.excluded.digest})


# Built once: the same statement every time, so SQLAlchemy compiles it once per process.
_UPSERTS = {"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)}


def _store(session: Session, seq: int, covers: Sequence[tuple[str, str, str]]) -> None:
    session.execute(_UPSERTS[session.get_bind().dialect.name],
                    [{"table_name": table, "row_id": row_id, "seq": seq, "digest": digest}
                     for table, row_id, digest in covers])


def record_rows(session: Session, rows: Iterable[Base], *, actor: str, action: str, subject: str,
                detail: dict[str, Any], organization_id: str | None = None,
                now: datetime | None = None) -> AuditEvent:
    """Append the event of a ledger write, covering the rows it inserted or changed (in the caller's transaction)."""
    if COVERS_KEY in detail:
        raise SmartAppError(f"The audit detail may not carry {COVERS_KEY!r} itself.",
                            "Pass the rows; record_rows lists them.")
    session.flush()
    # One entry per row, its state as flushed now.
    covers = list({(t, i): (t, i, d) for t, i, d in map(_covered, rows)}.values())
    event = record_event(session, actor=actor, action=action, subject=subject, organization_id=organization_id,
                         detail={**detail, COVERS_KEY: [list(c) for c in covers]}, now=now)
    if covers:
        _store(session, event.seq, covers)
    return event


def _problem(kind: str, table: str, row_id: str, message: str, seq: int | None = None) -> Problem:
    return Problem(seq, kind, message, table=table, row_id=row_id)


class _ChainSide:
    """Events against `audit_coverage`, merged in seq order as the chain streams by."""

    def __init__(self, session: Session, report: Problems) -> None:
        self.session, self.report = session, report
        cov = AuditCoverageRow
        self.records: Iterator[Any] = iter(session.execute(
            select(cov.seq, cov.table_name, cov.row_id, cov.digest)
            .order_by(cov.seq, cov.table_name, cov.row_id).execution_options(yield_per=_BATCH)))
        self.head = next(self.records, None)
        # Rows an event covered that a later event covers again (a timer started, then stopped).
        self.later: list[tuple[str, str, int]] = []

    def _advance(self) -> Any:
        record, self.head = self.head, next(self.records, None)
        return record

    def _stray(self, record: Any) -> None:
        self.report.add(_problem("row-inserted", record.table_name, record.row_id,
                                 f"its audit record names event {record.seq}, which is not in the chain: the row or "
                                 "its record was added outside the app, or the event was removed.", record.seq))

    def event(self, seq: int, detail_json: str) -> None:
        while self.head is not None and self.head.seq < seq:
            self._stray(self._advance())
        here: dict[tuple[str, str], str] = {}
        while self.head is not None and self.head.seq == seq:
            record = self._advance()
            here[(record.table_name, record.row_id)] = record.digest
        listed = json.loads(detail_json).get(COVERS_KEY, []) if f'"{COVERS_KEY}"' in detail_json else []
        for table, row_id, digest in listed:
            recorded = here.pop((table, row_id), None)
            if recorded is None:
                self.later.append((table, row_id, seq))
                if len(self.later) >= _LOOKUP:
                    self._check_later()
            elif recorded != digest:
                self.report.add(_problem("record-edited", table, row_id,
                                         f"its audit record no longer matches event {seq}, which recorded it: the row "
                                         "and its record were changed together.", seq))
        for table, row_id in here:
            self.report.add(_problem("row-inserted", table, row_id,
                                     f"its audit record names event {seq}, which does not cover it: the row and its "
                                     "record were added outside the app.", seq))

    def _check_later(self) -> None:
        by_table: dict[str, dict[str, int]] = defaultdict(dict)
        for table, row_id, seq in self.later:
            by_table[table][row_id] = seq
        self.later = []
        cov = AuditCoverageRow
        for table, wanted in by_table.items():
            found = {row_id: seq for row_id, seq in self.session.execute(select(cov.row_id, cov.seq).where(
                cov.table_name == table, cov.row_id.in_(list(wanted))))}
            for row_id, seq in wanted.items():
                if row_id not in found:
                    self.report.add(_problem("row-deleted", table, row_id,
                                             f"recorded by event {seq}, it is gone with its audit record: deleted "
                                             "outside the app.", seq))
                elif found[row_id] < seq:
                    self.report.add(_problem("record-edited", table, row_id,
                                             f"its audit record names event {found[row_id]}, older than event {seq} "
                                             "that recorded it last: the record was changed.", seq))

    def finish(self) -> None:
        while self.head is not None:
            self._stray(self._advance())
        self._check_later()


class Problems:
    """Findings about ledger rows, capped like the chain's own (the count keeps growing)."""

    def __init__(self) -> None:
        self.found: list[Problem] = []
        self.count = 0

    def add(self, problem: Problem) -> None:
        self.count += 1
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(problem)


def _check_rows(session: Session, report: Problems) -> int:
    """Every covered row against its audit record, and every record against a row; how many rows were read."""
    cov = AuditCoverageRow.__table__
    checked = 0
    for name in COVERED_TABLES:
        table = _table(name)
        joined = table.outerjoin(cov, and_(cov.c.table_name == name, cov.c.row_id == table.c.id))
        query = (select(table, cov.c.seq.label("audit_coverage_seq"), cov.c.digest.label("audit_coverage_digest"))
                 .select_from(joined).execution_options(yield_per=_BATCH))
        for row in session.execute(query):
            checked += 1
            values = {column.name: row._mapping[column] for column in table.columns}
            seq, digest = row._mapping["audit_coverage_seq"], row._mapping["audit_coverage_digest"]
            if seq is None:
                report.add(_problem("row-inserted", name, str(values["id"]),
                                    "no audit event recorded it: it was added outside the app."))
            elif digest != row_digest(name, values):
                report.add(_problem("row-edited", name, str(values["id"]),
                                    f"it was changed after event {seq} recorded it.", seq))
        orphans = select(cov.c.row_id, cov.c.seq).where(
            cov.c.table_name == name, ~exists().where(table.c.id == cov.c.row_id))
        for row_id, seq in session.execute(orphans):
            report.add(_problem("row-deleted", name, row_id,
                                f"recorded by event {seq}, it is no longer in the database: deleted outside the app.",
                                seq))
    for table_name, row_id, seq in session.execute(select(cov.c.table_name, cov.c.row_id, cov.c.seq).where(
            cov.c.table_name.not_in(COVERED_TABLES))):
        report.add(_problem("row-inserted", table_name, row_id,
                            f"an audit record for a table the app does not cover (event {seq}): added outside the app.",
                            seq))
    return checked


def _snapshot(session: Session) -> None:
    # The chain, the records and the rows are read by several statements; they must all see one moment, or a
    # write committed in between would look like tampering. Called before the session's first statement.
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return
    raw = session.connection().connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        # pysqlite runs a SELECT outside any transaction; in WAL mode a BEGIN pins one snapshot for all of them.
        session.connection().exec_driver_sql("BEGIN")


def verify(session: Session, organization_id: str | None = None, *, anchor: str | None = None) -> VerifyReport:
    """The chain (`audit.verify_chain`) and every ledger row it covers; a fresh transaction gives one snapshot."""
    _snapshot(session)
    ledger = Problems()
    chain_side = _ChainSide(session, ledger)
    report = verify_chain(session, organization_id, anchor=anchor, on_event=chain_side.event)
    chain_side.finish()
    rows = _check_rows(session, ledger)
    problems = (*report.problems, *ledger.found)[:MAX_PROBLEMS]
    first_bad = min((p.seq for p in problems if p.seq is not None and p.table is None), default=report.first_bad_seq)
    return replace(report, ok=report.ok and ledger.count == 0, problems=problems,
                   problem_count=report.problem_count + ledger.count, first_bad_seq=first_bad,
                   ledger_rows_checked=rows)


class BaselineRefused(SmartAppError):
    """The ledger's rows were already vouched for once."""

    title = "No baseline taken"


def baseline(session: Session, actor: str) -> int:
    """Cover, once, the rows written before the ledger was in the audit chain; how many rows were covered."""
    earlier = session.execute(select(AuditEventRow.seq, AuditEventRow.at).where(
        AuditEventRow.action == LEDGER_BASELINED).limit(1)).first()
    if earlier is not None:
        raise BaselineRefused(
            f"A baseline was taken on {format_at(earlier.at)} (event {earlier.seq}); rows written since are covered "
            "as they are written.",
            "Rows without an audit record now were added outside the app: `smart-app audit verify` names them.")
    cov = AuditCoverageRow.__table__
    total = 0
    for name in COVERED_TABLES:
        table = _table(name)
        last = ""
        while True:
            # In id order, a page at a time: flat memory, and the rows just covered are not read again.
            page = session.execute(select(table).where(
                table.c.id > last, ~exists().where(and_(cov.c.table_name == name, cov.c.row_id == table.c.id)))
                .order_by(table.c.id).limit(_LOOKUP)).mappings().all()
            if not page:
                break
            chunk = [(name, str(row["id"]), row_digest(name, {c.name: row[c.name] for c in table.columns}))
                     for row in page]
            event = record_event(session, actor=actor, action=LEDGER_BASELINED, subject=f"Table/{name}",
                                 detail={"rows": len(chunk), COVERS_KEY: [list(c) for c in chunk]})
            _store(session, event.seq, chunk)
            total += len(chunk)
            last = chunk[-1][1]
    if total == 0:
        # Recorded all the same, so a later baseline is refused and rows added outside the app stay visible.
        record_event(session, actor=actor, action=LEDGER_BASELINED, subject="Table/*", detail={"rows": 0})
    return total
