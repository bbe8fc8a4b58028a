"""Plan: ask the LLM for the next step, within the run's remaining time.

The call's deadline is AGENT_LLM_TIMEOUT_S or the run's remaining duration budget, whichever
comes first; reaching it ends the run with `llm_timeout` or `budget_duration`, after the one
that was reached. An invalid reply is sent back with what is wrong with it, up to
AGENT_MAX_REPAIRS times in a step; its tokens count against the run's budget. The repair
turns are sent only while the step is being repaired: they are never stored as steps, so a
rebuilt conversation has none.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from agent_core import events as ledger_events
from agent_core.errors import ConfigError
from agent_core.llm import LLMError, LLMReply, LLMTimeout, Message
from agent_core.loop.budgets import Budget, exhausted_budget
from agent_core.loop.prompting import (
    STEP_SCHEMA,
    parse_step,
    repair_request,
    stored_reply,
    truncate,
)
from agent_core.loop.session import Session
from agent_core.models import Run, RunStatus, StepDecision, StopReason


class Planned(NamedTuple):
    reply: LLMReply
    decision: StepDecision
    run: Run  # the run after any repair turns (their tokens are counted)


def plan(session: Session, run: Run, messages: list[Message], budget: Budget) -> Planned:
    """The next step the model proposes. Raises RunEnded when the LLM fails (llm_error), does
    not answer within AGENT_LLM_TIMEOUT_S (llm_timeout), the run's time runs out during the
    call (budget_duration), the model to ask cannot be known (config_error), a repair turn
    exhausts a budget, or the reply stays invalid after AGENT_MAX_REPAIRS repairs
    (invalid_output)."""
    context = session.context
    llm = context.llm
    assert llm is not None
    settings = context.settings
    repair: list[Message] = []
    attempt = 0
    while True:
        attempt += 1
        remaining_s = (budget.max_duration_ms - session.active_ms()) / 1000
        llm_timeout_s = settings.agent_llm_timeout_s
        try:
            reply = llm.complete(
                [*messages, *repair] if repair else messages,
                timeout_s=max(0.0, min(llm_timeout_s, remaining_s)),
                response_schema=STEP_SCHEMA,
            )
        except LLMTimeout as exc:
            if remaining_s <= llm_timeout_s:  # the run's duration budget was the limit
                message = (
                    f"the run's duration budget ({budget.max_duration_ms} ms) ran out while "
                    f"waiting for the LLM: {exc}"
                )
                session.end(run, RunStatus.FAILED, StopReason.BUDGET_DURATION, message)
            message = (
                f"the LLM did not answer within AGENT_LLM_TIMEOUT_S ({llm_timeout_s:g} s): {exc}"
            )
            session.end(run, RunStatus.FAILED, StopReason.LLM_TIMEOUT, message)
        except LLMError as exc:
            session.end(run, RunStatus.FAILED, StopReason.LLM_ERROR, str(exc))
        except ConfigError as exc:
            session.end(run, RunStatus.FAILED, StopReason.CONFIG_ERROR, str(exc))
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
            {"role": "assistant", "content": stored_reply(reply.content)},
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
