"""Plan: ask the LLM for the next step, within the run's remaining time.

An invalid reply is sent back with what is wrong with it, up to AGENT_MAX_REPAIRS times in a
step; its tokens count against the run's budget. The repair turns are sent only while the
step is being repaired: they are never stored as steps, so a rebuilt conversation has none.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from agent_core import events as ledger_events
from agent_core.llm import LLMError, LLMReply, LLMTimeout, Message
from agent_core.loop.budgets import Budget, exhausted_budget
from agent_core.loop.prompting import STEP_SCHEMA, parse_step, repair_request, truncate
from agent_core.loop.session import Session
from agent_core.models import Run, RunStatus, StepDecision, StopReason


class Planned(NamedTuple):
    reply: LLMReply
    decision: StepDecision
    run: Run  # the run after any repair turns (their tokens are counted)


def plan(session: Session, run: Run, messages: list[Message], budget: Budget) -> Planned:
    """The next step the model proposes. Raises RunEnded when the LLM fails (llm_error), the
    run's time runs out during the call (budget_duration), a repair turn exhausts a budget,
    or the reply stays invalid after AGENT_MAX_REPAIRS repairs (invalid_output)."""
    context = session.context
    llm = context.llm
    assert llm is not None
    settings = context.settings
    repair: list[Message] = []
    attempt = 0
    while True:
        attempt += 1
        remaining_s = (budget.max_duration_ms - session.active_ms()) / 1000
        try:
            reply = llm.complete(
                [*messages, *repair],
                timeout_s=max(0.0, min(settings.agent_llm_timeout_s, remaining_s)),
                response_schema=STEP_SCHEMA,
            )
        except LLMTimeout as exc:
            session.end(run, RunStatus.FAILED, StopReason.BUDGET_DURATION, str(exc))
        except LLMError as exc:
            session.end(run, RunStatus.FAILED, StopReason.LLM_ERROR, str(exc))
        decision = parse_step(reply.content)
        if isinstance(decision, StepDecision):
            return Planned(reply, decision, run)
        event = ledger_events.step_error(
            attempt=attempt,
            error=decision,
            reply=truncate(reply.content, 2000),
            llm=llm_facts(reply),
        )
        tokens = {
            "add_prompt_tokens": reply.prompt_tokens,
            "add_completion_tokens": reply.completion_tokens,
        }
        if attempt > settings.agent_max_repairs:
            message = f"the LLM's reply was invalid {attempt} times in a row: {decision}"
            session.end(
                run, RunStatus.FAILED, StopReason.INVALID_OUTPUT, message, extra=[event], **tokens
            )
        run = context.store.update_run(run.id, session.changes(**tokens), [event])
        exhausted = exhausted_budget(budget, run, session.active_ms())
        if exhausted:
            session.end(run, RunStatus.FAILED, *exhausted)
        repair = [
            *repair,
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": repair_request(decision)},
        ]


def llm_facts(reply: LLMReply) -> dict[str, Any]:
    """The facts about the model's answer that the step's events carry."""
    return ledger_events.llm_facts(
        model=reply.model,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        latency_ms=reply.latency_ms,
        fallback_from=list(reply.failures),
    )
