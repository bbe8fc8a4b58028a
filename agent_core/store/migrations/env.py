"""Alembic environment: migrations always run on the connection handed in by the Store."""

from alembic import context

from agent_core.store.migrations import VERSION_TABLE
from agent_core.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit(
        "run migrations with `.venv/bin/python -m agent_core db upgrade`, which uses DATABASE_URL"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite cannot ALTER most things: later migrations copy tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
