"""Integrity against someone who can write the database: signed approval bindings and
decisions, signed prune checkpoints, and the ledger's signed seals.

Existing rows keep verifying: their columns are added empty. An approval still pending is
bound when it is decided; an approval approved before this revision and not yet executed
carries no signed decision and is refused when its run resumes (approval_invalid).
Checkpoints written before seals are adopted (signed) by the first seal, which also covers
every run's ledger as it stands then.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
SEAL_TABLES = ("app_agent_ledger_seals", "app_agent_ledger_seal_entries")


def upgrade() -> None:
    with op.batch_alter_table("app_agent_approvals") as batch:
        batch.add_column(sa.Column("binding", sa.String(64), nullable=True))
        batch.add_column(sa.Column("decision_signature", sa.String(64), nullable=True))
    with op.batch_alter_table("app_agent_ledger_checkpoints") as batch:
        batch.add_column(sa.Column("signature", sa.String(64), nullable=True))
    op.create_table(
        "app_agent_ledger_seals",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("sealed_at", TIMESTAMP, nullable=False),
        sa.Column("entries_count", sa.Integer, nullable=False),
        sa.Column("entries_digest", sa.String(64), nullable=False),
        sa.Column("prev_signature", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_app_agent_ledger_seals"),
    )
    op.create_table(
        "app_agent_ledger_seal_entries",
        sa.Column("seal_seq", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seal_seq", "run_id", name="pk_app_agent_ledger_seal_entries"),
        sa.UniqueConstraint("run_id", "seq", name="uq_app_agent_ledger_seal_entries_run_id_seq"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def _postgresql_guards() -> None:
    # Seals are never changed nor deleted, not even by the retention prune.
    op.execute(
        """
        CREATE FUNCTION app_agent_seal_guard() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in SEAL_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION app_agent_seal_guard()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION app_agent_seal_guard()"
        )
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")


def _sqlite_guards() -> None:
    # Unlike events (which the prune deletes), nothing ever deletes a seal: both refused.
    for table in SEAL_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"""
                CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table}
                BEGIN
                    SELECT RAISE(ABORT, '{table} is append-only: {operation} refused');
                END
                """
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION app_agent_seal_guard() CASCADE")
    op.drop_table("app_agent_ledger_seal_entries")
    op.drop_table("app_agent_ledger_seals")
    with op.batch_alter_table("app_agent_ledger_checkpoints") as batch:
        batch.drop_column("signature")
    with op.batch_alter_table("app_agent_approvals") as batch:
        batch.drop_column("decision_signature")
        batch.drop_column("binding")
