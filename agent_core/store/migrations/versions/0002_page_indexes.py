"""Indexes for the dashboard's pages: runs newest first (all, or of one objective), failed
calls counted per run, a page of steps with its tool calls and approvals, approvals newest
first, a run's notifications.

The index on tool_calls(run_id) becomes (run_id, status): it still serves every lookup by
run, and counts a run's failed calls from the index alone.

On PostgreSQL each CREATE INDEX blocks writes to its table while it is built (seconds for a
million rows): run `db upgrade` when no worker is busy.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_INDEXES = (
    ("app_agent_runs", ("created_at",)),
    ("app_agent_runs", ("objective_id", "created_at")),
    ("app_agent_tool_calls", ("run_id", "status")),
    ("app_agent_tool_calls", ("step_id",)),
    ("app_agent_approvals", ("step_id",)),
    ("app_agent_approvals", ("created_at",)),
    ("app_agent_notifications", ("run_id",)),
)


def _name(table: str, columns: Sequence[str]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    for table, columns in NEW_INDEXES:
        with op.batch_alter_table(table) as batch:
            batch.create_index(_name(table, columns), list(columns))
    with op.batch_alter_table("app_agent_tool_calls") as batch:
        batch.drop_index("ix_app_agent_tool_calls_run_id")  # (run_id, status) serves it


def downgrade() -> None:
    for table, columns in reversed(NEW_INDEXES):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(_name(table, columns))
    with op.batch_alter_table("app_agent_tool_calls") as batch:
        batch.create_index("ix_app_agent_tool_calls_run_id", ["run_id"])
