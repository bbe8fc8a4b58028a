"""Helpers shared by the tests: a clock the test moves, and edits made behind the runtime's
back the way someone with a SQL console would make them."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from agent_core.cli import main
from agent_core.models import Objective, ObjectiveSpec
from agent_core.store import Store


class ManualClock:
    """The store's clock, moved by the test: time passes only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.current += timedelta(microseconds=1)  # distinct, increasing timestamps
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def make_objective(store: Store, **fields: object) -> Objective:
    spec = {"title": "Weekly leads", "description": "Find last week's leads.", **fields}
    return store.create_objective(ObjectiveSpec.model_validate(spec))


def tamper(database_url: str, edit: Callable[[sa.Connection], object]) -> None:
    """Run `edit` with the ledger's guards out of the way: PostgreSQL triggers disabled for
    the transaction (as a superuser can), SQLite's trigger dropped and put back."""
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                edit(conn)
                return
            triggers = (
                conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger'")
                .scalars()
                .all()
            )
            conn.exec_driver_sql("DROP TRIGGER app_agent_events_append_only")
            edit(conn)
            for trigger in triggers:
                conn.exec_driver_sql(trigger)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(args: Sequence[str]) -> CliResult:
    """The CLI's own entry point in this process (the environment comes from monkeypatch)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return CliResult(code, out.getvalue(), err.getvalue())
