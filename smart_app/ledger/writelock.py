"""Serialize ledger writes across workers inside the caller's transaction (advisory locks, SQLite write lock)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

# First half of the two-key advisory lock, so our keys never collide with another room's locks.
_PERFORMER_SPACE = "smart_app.ledger.performer"
_MONTH_SPACE = "smart_app.ledger.month"
_CONSENT_SPACE = "smart_app.ledger.consent"


def _sqlite_write_lock(connection: Connection) -> None:
    # pysqlite opens its transaction lazily at the first INSERT/UPDATE/DELETE; taking the write lock
    # up front means the checks that follow read the latest committed rows and nobody can write
    # between the check and the insert. Once a transaction is open it already did a write, so the
    # lock is already held.
    raw = connection.connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_performers(session: Session, organization_id: str, performers: Iterable[str]) -> None:
    """Hold, until the transaction ends, the write lock of each person (sorted, so two writers cannot deadlock)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        _sqlite_write_lock(connection)
        return
    for performer in sorted(set(performers)):
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:space), hashtext(:key))"),
                           {"space": _PERFORMER_SPACE, "key": f"{organization_id}|{performer}"})


def share_months(session: Session, organization_id: str, months: Iterable[str]) -> None:
    """Writers of entries hold each month shared, so `lock_month` waits for them and they see its lock."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        _sqlite_write_lock(connection)
        return
    for month in sorted(set(months)):
        connection.execute(text("SELECT pg_advisory_xact_lock_shared(hashtext(:space), hashtext(:key))"),
                           {"space": _MONTH_SPACE, "key": f"{organization_id}|{month}"})


def hold_month(session: Session, organization_id: str, month: str) -> None:
    """Exclusive hold of a month while it is being locked."""
    _hold(session, _MONTH_SPACE, f"{organization_id}|{month}")


def hold_consents(session: Session, organization_id: str, patient_id: str, program: str) -> None:
    """Exclusive hold of one patient-program's consents, so a check and the insert after it see no other writer."""
    _hold(session, _CONSENT_SPACE, f"{organization_id}|{patient_id}|{program}")


def _hold(session: Session, space: str, key: str) -> None:
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        _sqlite_write_lock(connection)
        return
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:space), hashtext(:key))"),
                       {"space": space, "key": key})


def hold_key(session: Session, space: str, key: str) -> None:
    """Exclusive hold of any named key until the transaction ends (another room's coordination, e.g. rollups)."""
    _hold(session, space, key)
