"""The loop: start (or resume) the run, then plan -> act -> observe until the run ends.

Before every step: a shutting-down worker gives the run back, an admin's cancel request
ends it, an exhausted budget fails it. Every way out raises RunEnded, caught once here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from agent_core import events as ledger_events
from agent_core.loop.acting import act
from agent_core.loop.budgets import Budget, effective_budget, exhausted_budget, limit_of
from agent_core.loop.planning import plan
from agent_core.loop.prompting import conversation, exchange
from agent_core.loop.resume import apply_decision, settle_interrupted_calls
from agent_core.loop.session import LoopContext, RunEnded, Session
from agent_core.models import Objective, Run, RunStatus, StepStatus, StopReason


def execute_run(context: LoopContext, run: Run, should_stop: Callable[[], bool]) -> Run:
    """Execute a run this worker has claimed until it ends for this worker: completed,
    failed, cancelled, paused for approval, or given back. Returns the run as last written."""
    session = Session(context, run)
    try:
        _until_it_ends(session, run, should_stop)
    except RunEnded as ended:
        return ended.run


def _until_it_ends(session: Session, run: Run, should_stop: Callable[[], bool]) -> NoReturn:
    context = session.context
    store = context.store
    objective, previous = store.run_memory(run)
    budget = effective_budget(objective, context.settings)
    if context.llm is None:
        problem = context.llm_problem or "no LLM is configured"
        session.end(run, RunStatus.FAILED, StopReason.CONFIG_ERROR, problem)
    run = _start(session, run, objective, budget, previous)

    # Resume: settle what the last session left unfinished.
    steps = store.list_steps(run.id) if run.steps_count else []
    if any(step.status is StepStatus.EXECUTING for step in steps):
        run = settle_interrupted_calls(session, run)
        steps = store.list_steps(run.id)
    if any(step.status is StepStatus.AWAITING_APPROVAL for step in steps):
        run = apply_decision(session, run)
        steps = store.list_steps(run.id)

    max_chars = context.settings.agent_observation_max_chars
    messages = conversation(
        objective,
        run,
        previous,
        steps,
        context.offered(objective),
        observation_max_chars=max_chars,
    )
    while True:
        _check_before_step(session, run, budget, should_stop)
        reply, decision, run = plan(session, run, messages, budget)
        step, run = act(session, run, objective, reply, decision)
        messages += exchange(step, max_chars)


def _start(
    session: Session, run: Run, objective: Objective, budget: Budget, previous: Run | None
) -> Run:
    """Record that this worker starts (or resumes) the run, with its budget and memory."""
    context = session.context
    return context.store.update_run(
        run.id,
        session.changes(previous_run_id=previous.id if previous else None),
        [
            ledger_events.run_started(
                objective_id=objective.id,
                attempt=run.attempts,
                owner=context.owner,
                resumed_at_step=run.steps_count,
                budget=budget.document(),
                previous_run_id=previous.id if previous else None,
            )
        ],
    )


def _check_before_step(
    session: Session, run: Run, budget: Budget, should_stop: Callable[[], bool]
) -> None:
    """Raise RunEnded if the run may not take another step."""
    store = session.context.store
    if should_stop():  # the worker is shutting down: the run resumes elsewhere
        released = store.release_run(
            run.id, owner=session.context.owner, reason="worker shutting down"
        )
        raise RunEnded(released or store.get_run(run.id))
    if run.cancel_requested_at is not None:
        session.end(run, RunStatus.CANCELLED, StopReason.CANCELLED, "cancelled by an admin")
    exhausted = exhausted_budget(budget, run, session.active_ms())
    if exhausted:
        reason, message = exhausted
        limit = ledger_events.budget_exceeded(
            budget_type=reason.value.removeprefix("budget_"), limit=limit_of(budget, reason)
        )
        session.end(run, RunStatus.FAILED, reason, message, extra=[limit])
