"""What every room of the loop works with: the collaborators (`LoopContext`), the run as this
worker holds it (`Session`: lease-fenced changes, active time), and how a run's execution
ends (`RunEnded`, raised by `Session.end` and by the few writes that end it otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from agent_core import events as ledger_events
from agent_core.config import Settings
from agent_core.llm import LLMClient
from agent_core.models import NewEvent, Objective, Run, RunChanges, RunStatus, StopReason
from agent_core.policy import PolicyDecision, offered_tools
from agent_core.render import without_secrets
from agent_core.store import Store
from agent_core.tools.gateway import ToolGateway
from agent_core.tools.registry import Tool, ToolRegistry


class RunEnded(Exception):
    """This worker's execution of the run is over: it completed, failed, was cancelled,
    paused for approval or was given back. `run` is the run as last written."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"run {run.id} ended: {run.status}")
        self.run = run


@dataclass(frozen=True)
class LoopContext:
    """The collaborators the rooms of the loop share; built once per Orchestrator."""

    store: Store
    llm: LLMClient | None
    tools: ToolRegistry
    settings: Settings
    owner: str
    gateway: ToolGateway
    monotonic: Callable[[], float]
    on_approval: Callable[[str], object] | None = None
    llm_problem: str | None = None

    def offered(self, objective: Objective) -> list[tuple[Tool, PolicyDecision]]:
        """The tools listed to the model for this objective, with their policy decision."""
        return offered_tools(
            list(self.tools),
            objective=objective,
            allowed_risks=self.settings.agent_allowed_risk_levels,
            approval_flow=self.settings.agent_approval_flow,
        )


class Session:
    """One run being executed by this worker: its active time and its fenced writes."""

    __slots__ = ("_active_before", "_lease", "_started", "context")

    def __init__(self, context: LoopContext, run: Run) -> None:
        self.context = context
        self._active_before = run.active_ms
        self._started = context.monotonic()
        self._lease = timedelta(seconds=context.settings.agent_run_lease_s)

    def active_ms(self) -> int:
        """Time spent executing the run, over every session (paused time excluded)."""
        return self._active_before + int((self.context.monotonic() - self._started) * 1000)

    def changes(self, **values: Any) -> RunChanges:
        """A run change made by this worker: fenced by its lease, which it also renews."""
        context = self.context
        return RunChanges(
            owner=context.owner,
            active_ms=self.active_ms(),
            lease_expires_at=context.store.now() + self._lease,
            **values,
        )

    def end(
        self,
        run: Run,
        status: RunStatus,
        reason: StopReason,
        message: str,
        *,
        extra: Sequence[NewEvent] = (),
        **changes: Any,
    ) -> NoReturn:
        """Fail or cancel the run: write its final status with `extra` events and the
        run_failed (or run_cancelled) event in one write, then raise RunEnded. A secret the
        message may echo (an LLM server's error page quoting the token it was sent) is hidden."""
        message = without_secrets(message, self.context.settings.secret_values)
        ended = (
            ledger_events.run_cancelled(by=None, stop_reason=reason, error=message)
            if status is RunStatus.CANCELLED
            else ledger_events.run_failed(stop_reason=reason, error=message)
        )
        raise RunEnded(
            self.context.store.update_run(
                run.id,
                self.changes(status=status, stop_reason=reason, error=message, **changes),
                [*extra, ended],
            )
        )
