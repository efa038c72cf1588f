"""INSERT ... ON CONFLICT on SQLite and PostgreSQL alike: the one place that picks the dialect's insert."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Result
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import QueryableAttribute, Session

# Both dialects' insert() build an Insert with on_conflict_do_update/_do_nothing.
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# A column to read back: a mapped attribute (`OutboxRow.id`) or a table column.
Column = ColumnElement[Any] | QueryableAttribute[Any]


def _insert(db: Session, table: type, values: Mapping[str, object]) -> Any:  # noqa: ANN401 - the dialect's Insert
    dialect = db.get_bind().dialect.name
    if dialect not in _INSERTS:
        raise RuntimeError(f"INSERT ... ON CONFLICT needs SQLite or PostgreSQL, not {dialect}")
    return _INSERTS[dialect](table).values(**values)


def upsert(db: Session, table: type, values: Mapping[str, object], keys: tuple[str, ...], *,
           set_: Mapping[str, object] | None = None,
           returning: Column | None = None) -> Result[Any]:
    """Insert or update one row atomically; two workers writing the same key both succeed.

    On a conflict on `keys` the row gets `set_` (default: the inserted values other than the keys);
    `returning` names a column to read back from the row as it is afterwards.
    """
    changes = set_ if set_ is not None else {k: v for k, v in values.items() if k not in keys}
    statement = _insert(db, table, values).on_conflict_do_update(index_elements=list(keys), set_=dict(changes))
    if returning is not None:
        statement = statement.returning(returning)
    return db.execute(statement)


def insert_new(db: Session, table: type, values: Mapping[str, object], keys: tuple[str, ...],
               returning: Column) -> bool:
    """Insert one row unless one with the same `keys` exists (concurrent inserts add one); whether it was added."""
    statement = _insert(db, table, values).on_conflict_do_nothing(index_elements=list(keys)).returning(returning)
    # RETURNING yields the row only when it was inserted (rowcount is not reliable on every driver).
    return db.execute(statement).first() is not None
