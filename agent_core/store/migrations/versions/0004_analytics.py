"""Analytics: an index to find the events of one type in a date range (invalid replies,
fallbacks, refusals), and each step's raw usage object from the LLM server (`usage`), so
that cost can be recomputed.

On PostgreSQL the CREATE INDEX blocks writes to the events table while it is built (seconds
for a million events): run `db upgrade` when no worker is busy.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agent_core.store.schema import JSONDocument

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS_BY_TYPE = "ix_app_agent_events_event_type_created_at"


def upgrade() -> None:
    with op.batch_alter_table("app_agent_run_steps") as batch:
        batch.add_column(sa.Column("usage", JSONDocument(), nullable=True))
    with op.batch_alter_table("app_agent_events") as batch:
        batch.create_index(EVENTS_BY_TYPE, ["event_type", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("app_agent_events") as batch:
        batch.drop_index(EVENTS_BY_TYPE)
    with op.batch_alter_table("app_agent_run_steps") as batch:
        batch.drop_column("usage")
