"""Analytics over long ranges: a summary of each closed day (counts, sums, the values
percentiles need, the top runs, per objective), written by maintenance once every run of the
day has ended, so that the analytics of a month reads thirty rows instead of every run.

Derived data: dropping it loses speed, and the figures of ledger events pruned since their
day was summarized (invalid replies, fallbacks, refusals).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
TABLE = "app_agent_day_summaries"


def _json() -> sa.types.TypeEngine[object]:
    if op.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return JSONB()
    return sa.JSON()


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("summarized_at", TIMESTAMP, nullable=False),
        sa.Column("figures", _json(), nullable=False),
        sa.Column("samples", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=f"pk_{TABLE}"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_table(TABLE)
