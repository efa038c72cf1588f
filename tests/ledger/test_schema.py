"""The ledger's migration creates exactly the tables its models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from smart_app.db import Base, import_models, make_engine


def test_models_and_migrations_agree(database_url: str) -> None:
    import_models()
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            indexes = {ix["name"] for ix in inspect(connection).get_indexes("timers")}
    finally:
        engine.dispose()
    assert differences == []
    assert "uq_timers_one_running" in indexes
