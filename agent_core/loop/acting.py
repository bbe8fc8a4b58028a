"""Act: policy first, then one of three ways to carry out the step, or the approval pause.

- recorded as finished: a refused call (unknown tool, outside the objective, too risky with
  approvals off) or invalid arguments; the step, its call and its events in one write;
- read-only: the tool runs first, then the finished step is written in one write;
- side effect (at most once): the call is written as started, the tool runs, then the step
  is finished. A crash in between leaves the call "started", which `resume` marks unknown
  and never repeats.

A risky call with AGENT_APPROVAL_FLOW on pauses the run with an approval bound to its exact
arguments. Every tool, the approved call of `resume` included, runs through `run_tool`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NoReturn

from pydantic import BaseModel

from agent_core import events as ledger_events
from agent_core.config import ledger_key
from agent_core.errors import ConfigError
from agent_core.llm import LLMReply
from agent_core.loop.planning import llm_facts
from agent_core.loop.prompting import stored_reply
from agent_core.loop.session import RunEnded, Session
from agent_core.models import (
    NewApproval,
    NewEvent,
    NewStep,
    NewToolCall,
    Objective,
    Run,
    RunStatus,
    Step,
    StepDecision,
    StepOutcome,
    StepStatus,
    StopReason,
    ToolCallStatus,
)
from agent_core.policy import Outcome, decide
from agent_core.store.hotpath import json_encoder, json_value
from agent_core.tools import gateway
from agent_core.tools.registry import Tool

# A result's JSON as its size is measured (json.dumps(value, ensure_ascii=False)), on one
# encoder rather than one per call.
_JSON_TEXT = json_encoder(canonical=False, ensure_ascii=False)


def act(
    session: Session, run: Run, objective: Objective, reply: LLMReply, decision: StepDecision
) -> tuple[Step, Run]:
    """Carry out the step the model proposed: the written step (for its observation) and the
    run after it. Raises RunEnded when the step ends the run (done) or pauses it."""
    context = session.context
    step = NewStep(
        thought=decision.thought,
        tool=decision.tool if not decision.done else None,
        args=decision.args if not decision.done else None,
        raw_output=stored_reply(reply.content),
        model=reply.model,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        latency_ms=reply.latency_ms,
        usage=reply.usage,
    )
    facts = llm_facts(reply)
    if decision.done:
        _complete(session, run, step, decision.summary, facts)  # raises RunEnded

    tool_name = decision.tool or ""
    tool = context.tools.get(tool_name)
    verdict = decide(
        tool_name,
        tool,
        objective=objective,
        allowed_risks=context.settings.agent_allowed_risk_levels,
        approval_flow=context.settings.agent_approval_flow,
        known_tools=[t.name for t, _ in context.offered(objective)] if tool is None else (),
    )
    args = decision.args or {}
    if verdict.outcome is Outcome.DENY or tool is None:  # recorded as finished: refused
        refusal = ledger_events.tool_denied(
            step_number=run.steps_count + 1, tool=tool_name, reason=verdict.reason
        )
        return _record_finished(
            session,
            run,
            step,
            tool_name,
            args,
            verdict.risk,
            gateway.failed(f"refused: {verdict.reason}"),
            status=ToolCallStatus.DENIED,
            events=[refusal],
            llm=facts,
        )
    parsed = gateway.validate_args(tool, args)
    if isinstance(parsed, str):  # recorded as finished: invalid arguments, nobody asked
        return _record_finished(
            session, run, step, tool_name, args, tool.risk, gateway.failed(parsed), llm=facts
        )
    if verdict.outcome is Outcome.NEEDS_APPROVAL:
        _pause(session, run, step, tool, args, verdict.reason, facts)  # raises RunEnded
    if not tool.side_effects:  # read-only: executed, then recorded
        result = run_tool(session, tool, parsed, run.id)
        return _record_finished(session, run, step, tool_name, args, tool.risk, result, llm=facts)
    return _run_side_effect(session, run, step, tool, args, parsed, facts)  # at most once


def run_tool(session: Session, tool: Tool, parsed: BaseModel, run_id: str) -> gateway.ToolResult:
    """The one place a tool is executed: through the gateway, bounded by its timeout; its
    result is capped before anything stores it (AGENT_RESULT_MAX_CHARS)."""
    settings = session.context.settings
    result = session.context.gateway.execute(tool, parsed, run_id=run_id, timeout_s=tool.timeout)
    if result.error is not None:  # a server's error may quote a key it was sent
        result = result.without_secrets(settings.secret_values)
    return result.with_result(
        cap_result(json_value(result.result), settings.agent_result_max_chars)
    )


def cap_result(value: Any, max_chars: int) -> Any:
    """`value` as stored: itself when its JSON fits in `max_chars`, else a visible marker with
    its full size and the beginning of its JSON, so that a 1 MB result is never stored (nor
    written to the step and its call) in full."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else _JSON_TEXT(value)
    if len(text) <= max_chars:
        return value
    return {  # keys sorted so that the marker comes before the preview in an observation
        "full_size_chars": len(text),
        "note": f"the result was {len(text):,} characters; only the first {max_chars:,} are "
        "kept, in preview",
        "preview": text[:max_chars],
    }


def _complete(
    session: Session, run: Run, step: NewStep, summary: str | None, facts: dict[str, Any]
) -> NoReturn:
    """The model said done: the final step and the completed run, in one write."""
    written = session.context.store.start_step(
        run.id,
        step,
        outcome=StepOutcome(step_status=StepStatus.COMPLETED, result={"summary": summary}),
        run=session.changes(
            status=RunStatus.COMPLETED, stop_reason=StopReason.DONE, summary=summary
        ),
        new_events=[
            ledger_events.step_completed(
                step_number=run.steps_count + 1, tool=None, done=True, llm=facts
            ),
            ledger_events.objective_completed(summary=summary),
        ],
    )
    raise RunEnded(written.run)


def _record_finished(
    session: Session,
    run: Run,
    step: NewStep,
    tool_name: str,
    args: dict[str, Any],
    risk: Any,
    result: gateway.ToolResult,
    *,
    llm: dict[str, Any],
    status: ToolCallStatus | None = None,
    events: Sequence[NewEvent] = (),
) -> tuple[Step, Run]:
    """A step whose outcome is already known is written in one transaction."""
    written = session.context.store.start_step(
        run.id,
        step,
        tool_call=NewToolCall(tool_name=tool_name, args=args, risk_level=risk or "high"),
        outcome=outcome_of(result, status),
        run=session.changes(**tool_tokens(result)),
        new_events=[
            *events,
            *result_events(run.steps_count + 1, tool_name, result, llm=llm),
        ],
    )
    return written.step, written.run


def _run_side_effect(
    session: Session,
    run: Run,
    step: NewStep,
    tool: Tool,
    args: dict[str, Any],
    parsed: BaseModel,
    facts: dict[str, Any],
) -> tuple[Step, Run]:
    """At most once: the call is recorded as started before it runs."""
    store = session.context.store
    started = store.start_step(
        run.id,
        step,
        tool_call=NewToolCall(tool_name=tool.name, args=args, risk_level=tool.risk),
        run=session.changes(),
        new_events=[
            ledger_events.step_started(step_number=run.steps_count + 1, tool=tool.name, llm=facts)
        ],
    )
    result = run_tool(session, tool, parsed, run.id)
    outcome = outcome_of(result)
    run = store.finish_step(
        run.id,
        started.step.id,
        outcome,
        tool_call_id=started.tool_call.id if started.tool_call else None,
        run=session.changes(**tool_tokens(result)),
        new_events=result_events(started.step.step_number, tool.name, result),
    )
    finished = started.step.model_copy(
        update={"status": outcome.step_status, "result": outcome.result}
    )
    return finished, run


def _pause(
    session: Session,
    run: Run,
    step: NewStep,
    tool: Tool,
    args: dict[str, Any],
    reason: str,
    facts: dict[str, Any],
) -> NoReturn:
    """Pause the run with an approval bound to this exact call (signed under the secret key:
    without AGENT_SECRET_KEY the run fails with config_error), and tell the admin."""
    context = session.context
    try:
        key = ledger_key(context.settings)
    except ConfigError as exc:
        session.end(run, RunStatus.FAILED, StopReason.CONFIG_ERROR, str(exc))
    expires_at = context.store.now() + timedelta(hours=context.settings.agent_approval_ttl_hours)
    approval = NewApproval(
        tool_name=tool.name, args=args, risk_reason=reason, expires_at=expires_at
    )
    written = context.store.start_step(
        run.id,
        step,
        tool_call=NewToolCall(
            tool_name=tool.name,
            args=args,
            risk_level=tool.risk,
            status=ToolCallStatus.AWAITING_APPROVAL,
        ),
        outcome=StepOutcome(step_status=StepStatus.AWAITING_APPROVAL),
        approval=approval,
        signing_key=key,
        run=session.changes(status=RunStatus.PAUSED, release_lease=True),
        new_events=[
            ledger_events.approval_requested(
                approval_id=approval.id,
                step_number=run.steps_count + 1,
                tool=tool.name,
                args=args,
                reason=reason,
                expires_at=expires_at,
                llm=facts,
            )
        ],
    )
    if context.on_approval is not None:
        context.on_approval(approval.id)
    raise RunEnded(written.run)


# --- what a tool result becomes ----------------------------------------------------------------


def tool_tokens(result: gateway.ToolResult) -> dict[str, int]:
    """The run's token counts to add for what the tool spent on a language model (none
    when it spent nothing): they count against the run's token budget."""
    if not (result.prompt_tokens or result.completion_tokens):
        return {}
    return {
        "add_prompt_tokens": result.prompt_tokens,
        "add_completion_tokens": result.completion_tokens,
    }


def outcome_of(result: gateway.ToolResult, status: ToolCallStatus | None = None) -> StepOutcome:
    """How a step ends after its tool result (`status` overrides the call's, e.g. denied)."""
    return StepOutcome(
        step_status=StepStatus.COMPLETED
        if result.status is ToolCallStatus.SUCCEEDED
        else StepStatus.FAILED,
        result=result.result,  # JSON already (run_tool); the store converts what it writes
        tool_call_status=status or result.status,
        tool_error=result.error,
        duration_ms=result.duration_ms,
        attempts=result.attempts,
    )


def result_events(
    step_number: int,
    tool_name: str,
    result: gateway.ToolResult,
    *,
    llm: dict[str, Any] = ledger_events.NO_LLM,
    approval_id: str | None = None,
) -> list[NewEvent]:
    """The step_completed event of a tool step, after a tool_error event if it failed or a
    tool_outcome_unknown event if the tool could not tell whether it took effect."""
    events = [
        ledger_events.step_completed(
            step_number=step_number,
            tool=tool_name,
            success=result.status is ToolCallStatus.SUCCEEDED,
            error=result.error,
            duration_ms=result.duration_ms,
            attempts=result.attempts,
            approval_id=approval_id,
            llm=llm,
        )
    ]
    if result.status is ToolCallStatus.UNKNOWN:  # the request left, no answer came back
        events.insert(
            0, ledger_events.tool_outcome_unknown(step_number=step_number, tool=tool_name)
        )
    if result.status is ToolCallStatus.FAILED:
        events.insert(
            0,
            ledger_events.tool_error(
                step_number=step_number,
                tool=tool_name,
                error=result.error,
                timed_out=result.timed_out,
            ),
        )
    return events
