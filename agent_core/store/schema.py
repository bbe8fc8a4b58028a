"""The runtime's tables (the seed's names), declared once for SQLite and PostgreSQL.

The Alembic migrations create exactly this; tests/test_migrations.py proves they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timestamps are aware UTC datetimes in Python whatever the backend stores."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONDocument(sa.TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL (indexable, and what Supabase's dashboard shows)."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB  # loaded with the dialect itself

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True)


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Uuid(as_uuid=False), sa.ForeignKey(target), nullable=nullable)


def _counter(name: str, kind: sa.types.TypeEngine[int] | None = None) -> sa.Column[int]:
    return sa.Column(name, kind or sa.Integer(), nullable=False, server_default=sa.text("0"))


# A run's totals, which its budgets let grow past 2**31 (10**12 tokens, 30 days in ms):
# 64-bit on PostgreSQL (migration 0009), as SQLite's INTEGER is.
BIG_COUNTER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


objectives = sa.Table(
    "app_agent_objectives",
    metadata,
    _id(),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tools_allowed", JSONDocument(), nullable=False),
    sa.Column("budget", JSONDocument(), nullable=False),
    sa.Column("risk_level", sa.String(16), nullable=False),
    sa.Column("schedule", sa.Text, nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    # Bumped by one atomic UPDATE ... RETURNING: the source of unique run numbers.
    _counter("last_run_number"),
    _timestamp("created_at"),
    _timestamp("updated_at"),
)

runs = sa.Table(
    "app_agent_runs",
    metadata,
    _id(),
    _fk("objective_id", "app_agent_objectives.id"),
    sa.Column("run_number", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("stop_reason", sa.String(32), nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("trigger", sa.String(16), nullable=False),
    _fk("previous_run_id", "app_agent_runs.id", nullable=True),
    _counter("steps_count"),
    _counter("tool_calls_count"),
    _counter("prompt_tokens", BIG_COUNTER),
    _counter("completion_tokens", BIG_COUNTER),
    # How many events the run has written: `ledger verify` detects a chain cut short.
    _counter("event_seq"),
    _timestamp("created_at"),
    _timestamp("started_at", nullable=True),
    _timestamp("completed_at", nullable=True),
    _timestamp("updated_at"),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    _timestamp("lease_expires_at", nullable=True),
    _counter("attempts"),
    _timestamp("cancel_requested_at", nullable=True),
    # Time spent executing, excluding time paused for approval: what the duration budget counts.
    _counter("active_ms", BIG_COUNTER),
    # The cron slot a scheduled run was created for: one run per slot, whatever the workers.
    _timestamp("schedule_slot", nullable=True),
    sa.UniqueConstraint("objective_id", "run_number"),
    sa.UniqueConstraint("objective_id", "schedule_slot"),
    sa.Index(None, "status", "created_at"),
    # Lists of runs, newest first: all of them, or one objective's.
    sa.Index(None, "created_at"),
    sa.Index(None, "objective_id", "created_at"),
)

steps = sa.Table(
    "app_agent_run_steps",
    metadata,
    _id(),
    _fk("run_id", "app_agent_runs.id"),
    sa.Column("step_number", sa.Integer, nullable=False),
    sa.Column("thought", sa.Text, nullable=True),
    sa.Column("tool", sa.String(64), nullable=True),
    sa.Column("args", JSONDocument(), nullable=True),
    sa.Column("raw_output", sa.Text, nullable=True),
    sa.Column("result", JSONDocument(), nullable=True),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("model", sa.String(200), nullable=True),
    _counter("prompt_tokens"),
    _counter("completion_tokens"),
    sa.Column("latency_ms", sa.Integer, nullable=True),
    _timestamp("created_at"),
    _timestamp("completed_at", nullable=True),
    # The LLM server's usage object as it came (cached or reasoning tokens when it reports
    # them), so that cost can be recomputed; NULL for steps written before it was kept.
    sa.Column("usage", JSONDocument(), nullable=True),
    sa.UniqueConstraint("run_id", "step_number"),
    # Analytics: the steps of a date range's runs, which come after them.
    sa.Index(None, "created_at"),
)

tool_calls = sa.Table(
    "app_agent_tool_calls",
    metadata,
    _id(),
    _fk("run_id", "app_agent_runs.id"),
    _fk("step_id", "app_agent_run_steps.id"),
    sa.Column("tool_name", sa.String(64), nullable=False),
    sa.Column("args", JSONDocument(), nullable=False),
    sa.Column("args_hash", sa.String(64), nullable=False),
    sa.Column("risk_level", sa.String(16), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("result", JSONDocument(), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=True),
    _counter("attempts"),
    _timestamp("created_at"),
    _timestamp("completed_at", nullable=True),
    # A run's calls, and its failed calls counted from the index alone.
    sa.Index(None, "run_id", "status"),
    sa.Index(None, "step_id"),
    # Analytics: the calls of a date range's runs, which come after them.
    sa.Index(None, "created_at"),
)

events = sa.Table(
    "app_agent_events",
    metadata,
    _fk("run_id", "app_agent_runs.id"),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("data", JSONDocument(), nullable=False),
    _timestamp("created_at"),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("run_id", "seq"),
    sa.Index(None, "created_at"),
    # Analytics: the few events of one type in a date range (invalid replies, refusals).
    sa.Index(None, "event_type", "created_at"),
)

ledger_checkpoints = sa.Table(
    "app_agent_ledger_checkpoints",
    metadata,
    sa.Column(
        "run_id", sa.Uuid(as_uuid=False), sa.ForeignKey("app_agent_runs.id"), primary_key=True
    ),
    # The last pruned event of the run: the chain of what remains starts from its hash.
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    _timestamp("pruned_at"),
    # HMAC under the secret key (signing.py): the prune was done by the runtime. Null only
    # on checkpoints written before seals, which the first seal adopts.
    sa.Column("signature", sa.String(64), nullable=True),
)

# Periodic signed seals (maintenance): each covers the runs whose ledger grew since the
# previous seal, one entry per run with its head, and chains to the previous seal by its
# signature. Append-only like the events (triggers in the migration).
ledger_seals = sa.Table(
    "app_agent_ledger_seals",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    _timestamp("sealed_at"),
    sa.Column("entries_count", sa.Integer, nullable=False),
    # SHA-256 of the seal's entries in run order (signing.entries_digest).
    sa.Column("entries_digest", sa.String(64), nullable=False),
    sa.Column("prev_signature", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(64), nullable=False),
)

ledger_seal_entries = sa.Table(
    "app_agent_ledger_seal_entries",
    metadata,
    sa.Column("seal_seq", sa.Integer, nullable=False),
    # No foreign key to the run: a run deleted behind the runtime's back stays named here.
    sa.Column("run_id", sa.Uuid(as_uuid=False), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("seal_seq", "run_id"),
    # A run's sealed heads in order: what `ledger verify` joins to the events.
    sa.UniqueConstraint("run_id", "seq"),
)

approvals = sa.Table(
    "app_agent_approvals",
    metadata,
    _id(),
    _fk("run_id", "app_agent_runs.id"),
    _fk("step_id", "app_agent_run_steps.id"),
    _fk("tool_call_id", "app_agent_tool_calls.id"),
    sa.Column("tool_name", sa.String(64), nullable=False),
    sa.Column("args", JSONDocument(), nullable=False),
    sa.Column("args_hash", sa.String(64), nullable=False),
    sa.Column("risk_reason", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    _timestamp("expires_at"),
    sa.Column("decided_by", sa.String(200), nullable=True),
    _timestamp("decided_at", nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    _timestamp("created_at"),
    # What the agent asked for, when the admin approved different arguments (`args`).
    sa.Column("original_args", JSONDocument(), nullable=True),
    # HMAC under the secret key (signing.py) of the id, tool and `args`: what the admin saw
    # is what runs. Null only on approvals requested before bindings (bound when decided).
    sa.Column("binding", sa.String(64), nullable=True),
    # HMAC of the decision (who, when, what, why), written when it is made.
    sa.Column("decision_signature", sa.String(64), nullable=True),
    sa.Index(None, "status", "expires_at"),
    sa.Index(None, "run_id"),
    sa.Index(None, "step_id"),
    sa.Index(None, "created_at"),  # newest first (after the pending ones)
)

notifications = sa.Table(
    "app_agent_notifications",
    metadata,
    _id(),
    _fk("approval_id", "app_agent_approvals.id"),
    _fk("run_id", "app_agent_runs.id"),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("recipient", sa.String(200), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    _counter("attempts"),
    sa.Column("last_error", sa.Text, nullable=True),
    # When maintenance should try a failed notification again.
    _timestamp("next_attempt_at", nullable=True),
    _timestamp("sent_at", nullable=True),
    _timestamp("created_at"),
    sa.UniqueConstraint("approval_id", "channel", "kind"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "run_id"),
)

workers = sa.Table(
    "app_agent_workers",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    _timestamp("started_at"),
    _timestamp("heartbeat_at"),
    _timestamp("stopped_at", nullable=True),
    sa.Column("running", JSONDocument(), nullable=False),
)

# Analytics (agent_core.analytics.daybook): each closed day whose runs have all ended is
# summarized once, so that a long date range reads a row per day instead of every run, step
# and tool call. Derived data: rewritten by maintenance when its layout's version changes.
day_summaries = sa.Table(
    "app_agent_day_summaries",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),  # UTC, 'YYYY-MM-DD'
    sa.Column("version", sa.Integer, nullable=False),  # analytics.packing.VERSION
    _timestamp("summarized_at"),
    # Distinct strings, top run ids and sizes (analytics.packing), and every number packed.
    sa.Column("figures", JSONDocument(), nullable=False),
    sa.Column("samples", sa.LargeBinary(), nullable=False),
)

RUNTIME_TABLES = frozenset(metadata.tables)
