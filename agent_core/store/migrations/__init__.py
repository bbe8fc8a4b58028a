"""Alembic migrations, run from code on a connection the Store already holds.

Opening a store only compares the revision the database records with the newest file in
versions/; neither needs Alembic (tens of milliseconds of imports for every command), which is
imported to migrate.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

# Not Alembic's default `alembic_version`: on Supabase the public schema is shared with the
# admin's own applications, which may use Alembic themselves.
VERSION_TABLE = "app_agent_schema_version"

# Two processes (dashboard and worker) may start at once on a fresh PostgreSQL database.
_UPGRADE_LOCK_KEY = 0x4147454E54  # "AGENT"

# The lines of a migration that name it and its parent, as script.py.mako writes them.
_REVISION = re.compile(r"^revision(?::[^=\n]*)?=\s*([\"'])(\w+)\1\s*$", re.MULTILINE)
_DOWN_REVISION = re.compile(
    r"^down_revision(?::[^=\n]*)?=\s*(?:None|([\"'])(\w+)\1)\s*$", re.MULTILINE
)


def _config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


@cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


@cache
def _revisions() -> dict[str, tuple[str, ...]]:
    """Each revision in versions/ and the ones it revises, read from the files' `revision` and
    `down_revision` lines without importing them; Alembic reads any other form."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted((Path(__file__).parent / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None or down is None:  # a merge, or written by hand: ask Alembic
            return {script.revision: _parents(script) for script in _scripts().walk_revisions()}
        found[revision[2]] = (down[2],) if down[2] else ()
    return found


def _parents(script: Script) -> tuple[str, ...]:
    down = script.down_revision
    return (down,) if isinstance(down, str) else tuple(down or ())


def head_revision() -> str:
    revisions = _revisions()
    revised = {parent for parents in revisions.values() for parent in parents}
    heads = [revision for revision in revisions if revision not in revised]
    assert len(heads) == 1, f"the migrations folder has {len(heads)} heads, not one: {heads}"
    return heads[0]


def is_known_revision(revision: str) -> bool:
    return revision in _revisions()


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database records (None before the first upgrade), read as Alembic
    reads it."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    recorded = connection.scalars(
        sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))
    ).all()
    if len(recorded) > 1:  # several heads: Alembic's own error says so
        from alembic.runtime.migration import MigrationContext

        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
    return recorded[0] if recorded else None


def upgrade(connection: sa.Connection, revision: str = "head") -> str:
    """Migrate the database behind `connection` (inside its transaction) to `revision`."""
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_UPGRADE_LOCK_KEY)))
    command.upgrade(_config(connection), revision)
    current = current_revision(connection)
    assert current is not None
    return current
