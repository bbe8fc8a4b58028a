"""Approve with changes: an approval keeps the arguments the agent asked for
(`original_args`) when the admin approved different ones (`args`, which is what runs).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agent_core.store.schema import JSONDocument

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app_agent_approvals") as batch:
        batch.add_column(sa.Column("original_args", JSONDocument(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("app_agent_approvals") as batch:
        batch.drop_column("original_args")
