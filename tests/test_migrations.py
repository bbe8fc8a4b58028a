"""`db upgrade` builds the declared schema on both backends, with nothing missing or extra."""

from __future__ import annotations

import re
import sqlite3

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from agent_core.errors import StoreUnavailable
from agent_core.store import Store, migrations
from agent_core.store.hotpath import ROW_COLUMNS, STEP_FUNCTION_SETS
from agent_core.store.schema import metadata


def _drift(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "version_table": migrations.VERSION_TABLE,
                "include_name": lambda name, kind, _: (
                    kind != "table" or name != migrations.VERSION_TABLE
                ),
            },
        )
        return compare_metadata(context, metadata)


def test_upgrade_creates_exactly_the_declared_schema(empty_database_url):
    store = Store.open(empty_database_url, check_schema=False)
    try:
        assert store.schema_revision() is None
        assert store.upgrade() == migrations.head_revision()
        assert _drift(store) == []
        assert set(sa.inspect(store.engine).get_table_names()) == {
            *metadata.tables,
            migrations.VERSION_TABLE,
        }
    finally:
        store.close()


def test_upgrade_twice_changes_nothing(empty_database_url):
    store = Store.open(empty_database_url, check_schema=False)
    try:
        first = store.upgrade()
        assert store.upgrade() == first
        assert _drift(store) == []
    finally:
        store.close()


def test_migrations_go_down_and_up_again(empty_database_url):
    store = Store.open(empty_database_url, check_schema=False)
    try:
        store.upgrade()
        with store.engine.begin() as conn:
            command.downgrade(migrations._config(conn), "base")
        assert set(sa.inspect(store.engine).get_table_names()) <= {migrations.VERSION_TABLE}
        store.upgrade()
        assert _drift(store) == []
    finally:
        store.close()


def test_a_database_without_the_schema_is_refused_with_the_fix(empty_database_url):
    if empty_database_url.startswith("sqlite"):
        with pytest.raises(StoreUnavailable, match=r"no database file .* db upgrade"):
            Store.open(empty_database_url)
        sqlite3.connect(empty_database_url.removeprefix("sqlite:///")).close()  # an empty file
    with pytest.raises(StoreUnavailable, match=r"no agent runtime schema yet: run .*db upgrade"):
        Store.open(empty_database_url)


def test_the_revisions_are_read_without_alembic_as_alembic_reads_them():
    """Opening a store reads versions/ by its `revision` lines, not through Alembic."""
    scripts = migrations._scripts()
    assert migrations.head_revision() == scripts.get_current_head()
    assert migrations._revisions() == {
        script.revision: migrations._parents(script) for script in scripts.walk_revisions()
    }
    assert not migrations.is_known_revision("not-a-revision")


def test_a_schema_behind_or_ahead_of_this_version_is_refused_saying_which(empty_database_url):
    store = Store.open(empty_database_url, check_schema=False)
    try:
        store.upgrade()
        with store.engine.begin() as conn:
            command.downgrade(migrations._config(conn), "0002")
        with pytest.raises(StoreUnavailable, match=r"at revision 0002, older than this version"):
            store.check_schema()
        table = sa.table(migrations.VERSION_TABLE, sa.column("version_num"))
        with store.engine.begin() as conn:
            conn.execute(table.update().values(version_num="9999"))
        with pytest.raises(StoreUnavailable, match=r"revision 9999, which this version .* not"):
            store.check_schema()
    finally:
        store.close()


def test_the_step_function_writes_every_column_the_store_writes(pg_store):
    """PostgreSQL's one-call step write (migrations 0008 and 0009): what it inserts and may set is
    what the Store's rows and run changes hold, so a column added to them and not to the
    function fails here rather than being dropped unseen."""
    with pg_store.engine.connect() as conn:
        source = conn.exec_driver_sql(
            "SELECT prosrc FROM pg_proc WHERE proname = 'app_agent_write_step'"
        ).scalar_one()
    inserted = {
        table: tuple(column.strip() for column in columns.split(","))
        for table, columns in re.findall(r"INSERT INTO (\w+) \(([^)]*)\)", source)
    }
    assert inserted == ROW_COLUMNS
    settable = set(re.findall(r"p_set \? '(\w+)'", source))
    assert settable >= STEP_FUNCTION_SETS
