"""The runtime's tables, the append-only ledger guard, and row level security on PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UUID = sa.Uuid(as_uuid=False)
TIMESTAMP = sa.DateTime(timezone=True)
ZERO = sa.text("0")

TABLES = (
    "app_agent_objectives",
    "app_agent_runs",
    "app_agent_run_steps",
    "app_agent_tool_calls",
    "app_agent_events",
    "app_agent_ledger_checkpoints",
    "app_agent_approvals",
    "app_agent_notifications",
    "app_agent_workers",
)


def _fk(column: str, table: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "app_agent_objectives",
        sa.Column("id", UUID, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tools_allowed", JSON, nullable=False),
        sa.Column("budget", JSON, nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("schedule", sa.Text, nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("last_run_number", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_app_agent_objectives"),
    )
    op.create_table(
        "app_agent_runs",
        sa.Column("id", UUID, nullable=False),
        sa.Column("objective_id", UUID, nullable=False),
        sa.Column("run_number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stop_reason", sa.String(32), nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("previous_run_id", UUID, nullable=True),
        sa.Column("steps_count", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("tool_calls_count", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("event_seq", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("cancel_requested_at", TIMESTAMP, nullable=True),
        sa.Column("active_ms", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("schedule_slot", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_app_agent_runs"),
        _fk("objective_id", "app_agent_runs", "app_agent_objectives"),
        _fk("previous_run_id", "app_agent_runs", "app_agent_runs"),
        sa.UniqueConstraint(
            "objective_id", "run_number", name="uq_app_agent_runs_objective_id_run_number"
        ),
        sa.UniqueConstraint(
            "objective_id", "schedule_slot", name="uq_app_agent_runs_objective_id_schedule_slot"
        ),
    )
    op.create_index(
        "ix_app_agent_runs_status_created_at", "app_agent_runs", ["status", "created_at"]
    )
    op.create_table(
        "app_agent_run_steps",
        sa.Column("id", UUID, nullable=False),
        sa.Column("run_id", UUID, nullable=False),
        sa.Column("step_number", sa.Integer, nullable=False),
        sa.Column("thought", sa.Text, nullable=True),
        sa.Column("tool", sa.String(64), nullable=True),
        sa.Column("args", JSON, nullable=True),
        sa.Column("raw_output", sa.Text, nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_app_agent_run_steps"),
        _fk("run_id", "app_agent_run_steps", "app_agent_runs"),
        sa.UniqueConstraint(
            "run_id", "step_number", name="uq_app_agent_run_steps_run_id_step_number"
        ),
    )
    op.create_table(
        "app_agent_tool_calls",
        sa.Column("id", UUID, nullable=False),
        sa.Column("run_id", UUID, nullable=False),
        sa.Column("step_id", UUID, nullable=False),
        sa.Column("tool_name", sa.String(64), nullable=False),
        sa.Column("args", JSON, nullable=False),
        sa.Column("args_hash", sa.String(64), nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_app_agent_tool_calls"),
        _fk("run_id", "app_agent_tool_calls", "app_agent_runs"),
        _fk("step_id", "app_agent_tool_calls", "app_agent_run_steps"),
    )
    op.create_index("ix_app_agent_tool_calls_run_id", "app_agent_tool_calls", ["run_id"])
    op.create_table(
        "app_agent_events",
        sa.Column("run_id", UUID, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_app_agent_events"),
        _fk("run_id", "app_agent_events", "app_agent_runs"),
    )
    op.create_index("ix_app_agent_events_created_at", "app_agent_events", ["created_at"])
    op.create_table(
        "app_agent_ledger_checkpoints",
        sa.Column("run_id", UUID, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("pruned_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_app_agent_ledger_checkpoints"),
        _fk("run_id", "app_agent_ledger_checkpoints", "app_agent_runs"),
    )
    op.create_table(
        "app_agent_approvals",
        sa.Column("id", UUID, nullable=False),
        sa.Column("run_id", UUID, nullable=False),
        sa.Column("step_id", UUID, nullable=False),
        sa.Column("tool_call_id", UUID, nullable=False),
        sa.Column("tool_name", sa.String(64), nullable=False),
        sa.Column("args", JSON, nullable=False),
        sa.Column("args_hash", sa.String(64), nullable=False),
        sa.Column("risk_reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_app_agent_approvals"),
        _fk("run_id", "app_agent_approvals", "app_agent_runs"),
        _fk("step_id", "app_agent_approvals", "app_agent_run_steps"),
        _fk("tool_call_id", "app_agent_approvals", "app_agent_tool_calls"),
    )
    op.create_index(
        "ix_app_agent_approvals_status_expires_at", "app_agent_approvals", ["status", "expires_at"]
    )
    op.create_index("ix_app_agent_approvals_run_id", "app_agent_approvals", ["run_id"])
    op.create_table(
        "app_agent_notifications",
        sa.Column("id", UUID, nullable=False),
        sa.Column("approval_id", UUID, nullable=False),
        sa.Column("run_id", UUID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_app_agent_notifications"),
        _fk("approval_id", "app_agent_notifications", "app_agent_approvals"),
        _fk("run_id", "app_agent_notifications", "app_agent_runs"),
        sa.UniqueConstraint(
            "approval_id",
            "channel",
            "kind",
            name="uq_app_agent_notifications_approval_id_channel_kind",
        ),
    )
    op.create_index(
        "ix_app_agent_notifications_status_next_attempt_at",
        "app_agent_notifications",
        ["status", "next_attempt_at"],
    )
    op.create_table(
        "app_agent_workers",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.Column("stopped_at", TIMESTAMP, nullable=True),
        sa.Column("running", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_app_agent_workers"),
    )

    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def _postgresql_guards() -> None:
    # The ledger is append-only. Only a transaction that has set app_agent.prune (the
    # retention prune, see Store.prune_events) may delete events or move a checkpoint.
    op.execute(
        """
        CREATE FUNCTION app_agent_ledger_guard() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('app_agent.prune', true) = 'on'
               AND (TG_OP = 'DELETE' OR TG_TABLE_NAME = 'app_agent_ledger_checkpoints') THEN
                RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
            END IF;
            RAISE EXCEPTION '% is append-only: % refused (only the retention prune may delete)',
                TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in ("app_agent_events", "app_agent_ledger_checkpoints"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION app_agent_ledger_guard()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION app_agent_ledger_guard()"
        )
    # Supabase exposes the public schema over HTTP to its anon and authenticated roles. With
    # row level security on and no policy, those roles see and write nothing; the runtime's
    # own connection owns the tables and is not subject to it.
    for table in (*TABLES, "app_agent_schema_version"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")


def _sqlite_guards() -> None:
    # SQLite has no session settings to tell the prune apart, so only UPDATE is refused here;
    # the hash chain detects any other edit.
    op.execute(
        """
        CREATE TRIGGER app_agent_events_append_only BEFORE UPDATE ON app_agent_events
        BEGIN
            SELECT RAISE(ABORT, 'app_agent_events is append-only: UPDATE refused');
        END
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION app_agent_ledger_guard() CASCADE")
    for table in reversed(TABLES):
        op.drop_table(table)
