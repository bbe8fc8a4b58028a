"""The public entry of the loop: an Orchestrator executes the runs its worker has claimed,
and rebuilds any run's conversation from the ledger."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from agent_core.config import Settings
from agent_core.errors import Conflict, LeaseLost
from agent_core.llm import LLMClient, Message
from agent_core.loop import prompting
from agent_core.loop.execution import execute_run
from agent_core.loop.session import LoopContext
from agent_core.models import Objective, Run, RunStatus, Step
from agent_core.store import Store
from agent_core.tools.gateway import ToolGateway
from agent_core.tools.registry import ToolRegistry

log = logging.getLogger(__name__)


class Orchestrator:
    """Executes runs this worker has claimed, one step per LLM call, until they stop."""

    def __init__(
        self,
        *,
        store: Store,
        llm: LLMClient | None,
        tools: ToolRegistry,
        settings: Settings,
        owner: str,
        llm_problem: str | None = None,
        on_approval: Callable[[str], object] | None = None,
        gateway: ToolGateway | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.context = LoopContext(
            store=store,
            llm=llm,
            tools=tools,
            settings=settings,
            owner=owner,
            gateway=gateway or ToolGateway(),
            monotonic=monotonic,
            on_approval=on_approval,
            llm_problem=llm_problem,
        )

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def owner(self) -> str:
        return self.context.owner

    def execute(
        self,
        run_id: str,
        *,
        should_stop: Callable[[], bool] | None = None,
        claimed: Run | None = None,
    ) -> Run:
        """Run the claimed run until it completes, fails, pauses or is cancelled. When
        `should_stop` turns true (the worker is shutting down), the run is given back to the
        queue before its next step, to resume elsewhere from the ledger. `claimed` is the run
        as this worker's claim returned it, which spares reading it again (the run's start
        write returns it as it then is)."""
        if claimed is not None and claimed.id == run_id:
            run = claimed
        else:
            run = self.store.get_run(run_id)
        if run.status is not RunStatus.RUNNING or run.lease_owner != self.owner:
            raise Conflict(f"run {run_id} is not claimed by this worker ({self.owner})")
        try:
            return execute_run(self.context, run, should_stop or _never)
        except LeaseLost as exc:
            log.warning("%s; stopping without writing more", exc)
            return self.store.get_run(run_id)

    def conversation(
        self,
        run: Run,
        objective: Objective,
        *,
        steps: Sequence[Step] | None = None,
        previous: Run | Literal["unknown"] | None = "unknown",
    ) -> list[Message]:
        """The messages the LLM is sent for the run's next step, rebuilt from the ledger
        (`steps` and `previous` spare the queries when the caller has them already)."""
        if previous == "unknown":
            previous = self.store.previous_run(run)
        return prompting.conversation(
            objective,
            run,
            previous,
            self.store.list_steps(run.id) if steps is None else steps,
            self.context.offered(objective),
            observation_max_chars=self.context.settings.agent_observation_max_chars,
        )


def _never() -> bool:
    return False
