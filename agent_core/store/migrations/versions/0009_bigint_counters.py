"""PostgreSQL: a run's token counts and active time in 64-bit integers.

A run's budgets allow up to 10**12 tokens and 30 days of execution, but PostgreSQL's
`integer` stops at 2**31 - 1: past 2,147,483,647 tokens, or 24.8 days of execution, every
write of the run failed ("integer out of range") and the run could neither go on nor end.
`app_agent_write_step` takes the tokens a step adds as `bigint` too. A step's own counts stay
`integer`: one reply's are at most llm.MAX_REPLY_TOKENS.

SQLite's INTEGER is 64-bit already: nothing changes there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from agent_core.store.migrations import step_function

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("prompt_tokens", "completion_tokens", "active_ms")


def _retype(to: str) -> None:
    changes = ", ".join(f"ALTER COLUMN {name} TYPE {to}" for name in COLUMNS)
    op.execute(f"ALTER TABLE app_agent_runs {changes}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    step_function.drop(tokens="integer")
    _retype("bigint")
    step_function.create(tokens="bigint")


def downgrade() -> None:
    """Back to `integer`: fails, changing nothing, while a run counts more than it holds."""
    if op.get_bind().dialect.name != "postgresql":
        return
    step_function.drop(tokens="bigint")
    _retype("integer")
    step_function.create(tokens="integer")
