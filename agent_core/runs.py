"""Starting, cancelling and executing runs: the rules the CLI and the dashboard share.

A run is queued here and executed by a worker; `execute_here` lets a command execute one in
its own process (and gives it back to the queue if interrupted).
"""

from __future__ import annotations

from agent_core.config import Settings
from agent_core.errors import Conflict
from agent_core.models import Run, RunTrigger, WorkerInfo
from agent_core.render import why_not_claimable
from agent_core.runtime import Runtime
from agent_core.store import Store


def ensure_enabled(settings: Settings, doing: str = "start runs") -> None:
    """The kill switch: nothing runs unless AGENT_ENABLED is true."""
    if not settings.agent_enabled:
        raise Conflict(
            f"the agent runtime is disabled (AGENT_ENABLED=false): set AGENT_ENABLED=true "
            f"to {doing}"
        )


def start_run(
    store: Store, settings: Settings, objective_id: str, *, trigger: RunTrigger = RunTrigger.MANUAL
) -> Run:
    """Queue a run of an enabled objective; a worker picks it up."""
    ensure_enabled(settings)
    objective = store.get_objective(objective_id)
    if not objective.enabled:
        raise Conflict(f"objective {objective.id} is disabled: enable it before starting runs")
    return store.create_run(objective.id, trigger=trigger)


def cancel_run(store: Store, run_id: str, *, by: str) -> Run:
    """Cancel a queued or paused run at once; a running one stops before its next step."""
    return store.request_cancel(run_id, by=by)


def execute_here(runtime: Runtime, run_id: str) -> Run:
    """Claim the run and execute it in this process until it completes, fails or pauses.
    Ctrl-C gives it back to the queue, where a worker resumes it from the ledger."""
    ensure_enabled(runtime.settings, "execute runs")
    store = runtime.store
    claimed = store.claim_run(
        run_id, owner=runtime.owner, lease_s=runtime.settings.agent_run_lease_s
    )
    if claimed is None:
        run = store.get_run(run_id)
        raise Conflict(f"run {run.id} cannot be executed now: {why_not_claimable(run)}")
    try:
        return runtime.orchestrator().execute(claimed.id)
    except KeyboardInterrupt:
        store.release_run(claimed.id, owner=runtime.owner, reason="interrupted")
        raise


def live_workers(store: Store, settings: Settings) -> list[WorkerInfo]:
    """Workers whose heartbeat is recent enough to believe them alive."""
    return store.list_workers(alive_within=settings.worker_alive_window)
