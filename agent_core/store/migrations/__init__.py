"""Alembic migrations, run from code on a connection the Store already holds."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

# Not Alembic's default `alembic_version`: on Supabase the public schema is shared with the
# admin's own applications, which may use Alembic themselves.
VERSION_TABLE = "app_agent_schema_version"

# Two processes (dashboard and worker) may start at once on a fresh PostgreSQL database.
_UPGRADE_LOCK_KEY = 0x4147454E54  # "AGENT"


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def is_known_revision(revision: str) -> bool:
    return any(script.revision == revision for script in _scripts().walk_revisions())


def current_revision(connection: sa.Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: sa.Connection, revision: str = "head") -> str:
    """Migrate the database behind `connection` (inside its transaction) to `revision`."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_UPGRADE_LOCK_KEY)))
    command.upgrade(_config(connection), revision)
    current = current_revision(connection)
    assert current is not None
    return current
