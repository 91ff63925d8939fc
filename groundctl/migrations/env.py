"""Alembic's environment: always handed a live connection by groundctl.migrations (never run from an ini)."""

from alembic import context

from groundctl.runtime import tables  # noqa: F401  (every table on the metadata)
from groundctl.runtime.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through groundctl.migrations.upgrade(engine), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite can alter little in place: batch mode copies the table, as Alembic recommends
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
