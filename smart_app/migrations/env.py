"""Alembic environment: runs on the connection handed over by `smart_app.db.upgrade`."""

from alembic import context

from smart_app.db import Base, import_models

import_models()
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `smart-app db upgrade`")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
