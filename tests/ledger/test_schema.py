"""The ledger's migration creates exactly the tables its models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from smart_app.db import Base, import_models


def test_models_and_migrations_agree(engine: Engine) -> None:
    import_models()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        indexes = {ix["name"] for ix in inspect(connection).get_indexes("timers")}
    assert differences == []
    assert "uq_timers_one_running" in indexes
