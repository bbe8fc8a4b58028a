"""PostgreSQL: a step's writes in one function call, whose plans the server keeps.

A step built on the run's known ledger head (`HotPath.write_step_at_once`) was one
statement of data-modifying CTEs, planned afresh at every step (statements are never
prepared: transaction poolers such as Supabase's do not keep them); that planning and the
CTEs' execution cost the server about twice what the same writes cost as the plain
statements of this function, whose plans PL/pgSQL keeps for the connection. The function is
the same transaction: the run updated under the same guard (lease, event count, step count,
hash at that head), and the rows inserted only when it matched; it returns the run as
updated, or nothing. Executable by the runtime's own role only (its owner); a runtime role
that may not execute it writes its steps the usual way (StoreBase._write_at_once). Its text
is in ..step_function (0009 creates it again with 64-bit token counters).

SQLite has no such functions; its step is one INSERT into a view (see HotPath).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

from agent_core.store.migrations import step_function

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        step_function.create(tokens="integer")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        step_function.drop(tokens="integer")
