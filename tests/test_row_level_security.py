"""On PostgreSQL (Supabase), roles other than the runtime's own see and write nothing."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from psycopg import sql

from agent_core.store import RUNTIME_TABLES
from agent_core.store.migrations import VERSION_TABLE
from tests.support import make_objective


@pytest.fixture
def anon_role(pg_admin, pg_store):
    """A role like Supabase's `anon`: granted every table privilege, as Supabase grants it."""
    role = f"agent_test_anon_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    with pg_store.engine.begin() as conn:
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        conn.exec_driver_sql(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'
        )
    yield role
    with pg_store.engine.begin() as conn:
        conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
    pg_admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_every_runtime_table_has_row_level_security(pg_store):
    with pg_store.engine.connect() as conn:
        protected = dict(
            conn.execute(
                sa.text(
                    "SELECT relname, relrowsecurity FROM pg_class "
                    "WHERE relkind = 'r' AND relname LIKE 'app\\_agent\\_%'"
                )
            ).all()
        )
    assert set(protected) == {*RUNTIME_TABLES, VERSION_TABLE}
    assert all(protected.values()), protected


def test_anon_reads_zero_rows_and_cannot_insert(pg_store, anon_role):
    objective = make_objective(pg_store)
    pg_store.create_run(objective.id)
    with pg_store.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(f'SET LOCAL ROLE "{anon_role}"')
        for table in sorted({*RUNTIME_TABLES, VERSION_TABLE}):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0, table
    with pg_store.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(f'SET LOCAL ROLE "{anon_role}"')
        with pytest.raises(sa.exc.DBAPIError, match="row-level security"):
            conn.exec_driver_sql(
                "INSERT INTO app_agent_objectives (id, title, description, tools_allowed, "
                "budget, risk_level, timezone, enabled, created_at, updated_at) VALUES "
                "(gen_random_uuid(), 'x', 'x', '[]', '{}', 'high', 'UTC', true, now(), now())"
            )
    # The runtime's own connection is unaffected.
    assert [item.id for item in pg_store.list_objectives()] == [objective.id]
    assert len(pg_store.list_runs()) == 1


def test_anon_cannot_call_the_step_function(pg_store, anon_role):
    # The runtime's one-call step write (migrations 0008 and 0009) is executable by its owner only.
    run = pg_store.create_run(make_objective(pg_store).id)
    with pg_store.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(f'SET LOCAL ROLE "{anon_role}"')
        with pytest.raises(sa.exc.DBAPIError, match="permission denied for function"):
            conn.exec_driver_sql(
                "SELECT * FROM app_agent_write_step(%(run)s, NULL, now(), 1, 0, '', '{}', "
                "0, 0, 0, 0, 0, NULL, NULL, NULL, NULL)",
                {"run": run.id},
            )
    assert pg_store.get_run(run.id).event_seq == 1
