"""INSERT ... ON CONFLICT DO UPDATE on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(db: Session, table: type, values: dict, keys: tuple[str, ...]) -> None:
    """Insert or update one row atomically; two workers writing the same key both succeed."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={k: v for k, v in values.items() if k not in keys})
    db.execute(statement)
