"""Analytics at scale: indexes on the creation time of steps and tool calls, so that the
figures of a date range read the steps and calls of that range (a run's rows come after it)
instead of every row of the table, as the events and approvals already could.

On PostgreSQL each CREATE INDEX blocks writes to its table while it is built (seconds for a
million rows): run `db upgrade` when no worker is busy.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("app_agent_run_steps", "app_agent_tool_calls")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_index(f"ix_{table}_created_at", ["created_at"])


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_created_at")
