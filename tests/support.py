"""Helpers shared by the tests: a clock the test moves, and edits made behind the runtime's
back the way someone with a SQL console would make them."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from agent_core.cli import main
from agent_core.config import Settings, load_settings
from agent_core.llm import InferenceLLM
from agent_core.loop import Orchestrator
from agent_core.models import (
    NewApproval,
    NewEvent,
    NewStep,
    NewToolCall,
    Objective,
    ObjectiveSpec,
    RiskLevel,
    Run,
    RunChanges,
    RunStatus,
    StepOutcome,
    StepStatus,
    ToolCallStatus,
)
from agent_core.runtime import build_tools
from agent_core.store import Store
from agent_core.store.signing import LedgerKey
from agent_core.store.steps import StepStarted
from agent_core.tools import Tool, ToolRegistry

# The runtime's secret key in tests (the dashboard fixture's AGENT_SECRET_KEY too), and the
# ledger key derived from it, passed explicitly to the Store's signing methods.
SECRET_KEY = "test-secret-key-for-links-0123456789"
KEY = LedgerKey(SECRET_KEY)
# What the runs paused on send_email (`pause_on_email`) ask to send.
EMAIL = {"to": "ada@example.com", "subject": "Following up", "body": "Any news?"}


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
            triggers = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            ).all()
            for name, _ in triggers:
                conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
            edit(conn)
            for _, trigger in triggers:
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


LEADS_DDL = """
CREATE TABLE app_leads (
    id INTEGER PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(200),
    score INTEGER,
    followed_up BOOLEAN NOT NULL DEFAULT FALSE,
    created_at {timestamp} NOT NULL
)
"""


def create_leads(store: Store, rows: Sequence[dict[str, object]]) -> None:
    """The seed's business table, in the same database as the runtime (the default)."""
    leads = sa.table(
        "app_leads",
        sa.column("id"),
        sa.column("name"),
        sa.column("email"),
        sa.column("score"),
        sa.column("followed_up"),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    with store.engine.begin() as conn:
        timestamp = "TIMESTAMPTZ" if conn.dialect.name == "postgresql" else "TIMESTAMP"
        conn.exec_driver_sql(LEADS_DDL.format(timestamp=timestamp))
        if rows:
            conn.execute(leads.insert(), list(rows))


def agent_settings(**values: object) -> Settings:
    base: dict[str, object] = {
        "agent_enabled": True,
        "agent_data_tables": ["app_leads"],
        "agent_llm_base_url": "http://127.0.0.1:9/v1",
        "agent_secret_key": SECRET_KEY,
    }
    return load_settings(**{**base, **values})


def make_orchestrator(
    store: Store,
    llm_url: str | None,
    *,
    settings: Settings | None = None,
    tools: ToolRegistry | None = None,
    models: Sequence[str] = ("test-model",),
    owner: str = "test-worker",
    on_approval: Callable[[str], object] | None = None,
) -> Orchestrator:
    """A real orchestrator: the real huggingface_hub client against `llm_url`."""
    settings = settings or agent_settings()
    llm = (
        InferenceLLM(models=list(models), base_url=llm_url, token="test-token") if llm_url else None
    )
    return Orchestrator(
        store=store,
        llm=llm,
        tools=tools
        if tools is not None
        else build_tools(settings, data_engine=store.engine, content_llm=llm),
        settings=settings,
        owner=owner,
        llm_problem=None if llm_url else "no LLM is configured: set HF_TOKEN or AGENT_LLM_BASE_URL",
        on_approval=on_approval,
    )


def run_to_end(orchestrator: Orchestrator, objective_id: str) -> Run:
    """Queue a run, claim it as the orchestrator's worker, execute it."""
    store = orchestrator.store
    run = store.create_run(objective_id)
    claimed = store.claim_run(run.id, owner=orchestrator.owner, lease_s=300)
    assert claimed is not None
    return orchestrator.execute(run.id)


def pause_on_email(
    store: Store,
    run_id: str,
    *,
    owner: str,
    step: NewStep | None = None,
    risk_reason: str = "sends an email",
    expires_in: timedelta = timedelta(hours=24),
    paused: bool = True,
    new_events: Sequence[NewEvent] = (),
) -> StepStarted:
    """The step that pauses a run its `owner` holds on send_email (EMAIL), waiting for an
    approval: the step, its call and the approval, written as the loop writes them (without
    `paused`, the run is left running, as by a worker that died before pausing it)."""
    return store.start_step(
        run_id,
        step or NewStep(thought="Email Ada.", tool="send_email", args=EMAIL),
        tool_call=NewToolCall(
            tool_name="send_email",
            args=EMAIL,
            risk_level=RiskLevel.HIGH,
            status=ToolCallStatus.AWAITING_APPROVAL,
        ),
        outcome=StepOutcome(step_status=StepStatus.AWAITING_APPROVAL),
        approval=NewApproval(
            tool_name="send_email",
            args=EMAIL,
            risk_reason=risk_reason,
            expires_at=store.now() + expires_in,
        ),
        signing_key=KEY,
        run=RunChanges(owner=owner, status=RunStatus.PAUSED, release_lease=True)
        if paused
        else RunChanges(owner=owner),
        new_events=new_events,
    )


class _NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


def crm_tool(handler: Callable[..., object]) -> Tool:
    """A read-only `read_crm` tool, without arguments, that does what `handler` does (a
    CRM that fails in some way of the test's choosing)."""
    return Tool(
        name="read_crm",
        description="Reads the CRM.",
        risk=RiskLevel.LOW,
        side_effects=False,
        args_model=_NoArgs,
        handler=handler,
    )
