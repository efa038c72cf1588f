"""Database engine, the declarative base, sessions, and migrations (SQLite or PostgreSQL)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import anyio.to_thread
from sqlalchemy import CheckConstraint, Connection, CursorResult, DateTime, Engine, Result, String, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from smart_app.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

# Every module that declares tables; migrations and tests import them through here.
MODEL_MODULES = ("smart_app.launch.models", "smart_app.ledger.models", "smart_app.ledger.records",
                 "smart_app.billing.models", "smart_app.access.models")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base for every table of the app."""


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(TypeDecorator):
    """A StrEnum in a VARCHAR column: the member's value is stored, members come back; an unknown value is refused.

    Pair it with `enum_check` in the table's arguments, so the database refuses what other writers send too.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        if value is None:
            return None
        try:
            return self.enum(value).value
        except ValueError:
            allowed = ", ".join(member.value for member in self.enum)
            raise ValueError(f"{value!r} is not a {self.enum.__name__}; use one of {allowed}") from None

    def process_result_value(self, value: str | None, dialect: object) -> StrEnum | None:
        return None if value is None else self.enum(value)


def enum_check(column: str, enum: type[StrEnum], name: str) -> CheckConstraint:
    """A CHECK constraint that `column` holds one of the enum's values (NULL passes, as SQL has it)."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name)


def utcnow() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)


def import_models() -> None:
    """Import every model module so `Base.metadata` knows all tables."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets readers run beside the one writer; busy_timeout waits instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL; SQLite gets WAL mode.

    `hide_parameters`: a database error's message (logged with its traceback) names the statement but never its
    values, which are notes, patient ids and encrypted tokens.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    raise ConfigError(f"Unsupported database URL {url!r}.",
                      "Use sqlite:///path/to/file.db or postgresql://user@host/dbname.")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to the engine; objects stay usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (a database transaction) in the worker thread pool, never on the event loop.

    The same pool Starlette runs plain `def` endpoints in, so a slow write holds a thread, not every request.
    """
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (a Session's execute answers a CursorResult for those)."""
    return cast(CursorResult[Any], result).rowcount


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` on this engine."""
    from alembic import command

    import_models()
    config = _alembic_config()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite cannot add a constraint to a table: batch mode copies the table and drops the old one, which
            # enforced foreign keys refuse while other rows point at it. The PRAGMA is ignored inside a
            # transaction, so it goes before the migrations' transaction; the references are checked before commit.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if sqlite:
                    # pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so a migration's first
                    # CREATE would commit on its own: one BEGIN makes the whole run one transaction.
                    connection.exec_driver_sql("BEGIN")
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    _check_references(connection)
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _check_references(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = ", ".join(sorted({str(row[0]) for row in broken}))
        raise ConfigError(f"After migrating, {len(broken)} row(s) of {tables} point at rows that do not exist, so "
                          "the migration was not committed.",
                          "Restore the database from the backup taken before the upgrade and report this as a bug.")


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration shipped with this version of the app."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_alembic_config()).get_current_head())


def known_revisions() -> frozenset[str]:
    """Every migration shipped with this version of the app."""
    from alembic.script import ScriptDirectory

    return frozenset(script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions())


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine) -> None:
    """Refuse to serve a database that is not fully migrated."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise ConfigError(f"The database is at migration {current or 'none'}, the app needs {head}.",
                          "Run `smart-app db upgrade` first.")
