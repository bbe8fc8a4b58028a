"""The ledger's event types, and the one function that builds each event's payload.

Every event appended to a run's ledger is built here, so each type has exactly one shape:
the keyword arguments of its builder, all of them present in the payload (None where they
do not apply). Readers (`render.describe_event`, analytics) rely on these shapes; events
written by older versions keep their stored payloads (the hash chain covers them) and are
read tolerantly.

| type                        | payload                                                      |
| --------------------------- | ------------------------------------------------------------ |
| run_queued                  | objective_id, run_number, trigger, slot                      |
| run_skipped                 | objective_id, run_number, trigger, slot, active_run_id       |
| run_claimed                 | owner, from_status, lease_lapsed_for                         |
| run_started                 | objective_id, attempt, owner, resumed_at_step, budget,       |
|                             | previous_run_id                                              |
| run_released                | owner, reason                                                |
| run_paused                  | owner, reason                                                |
| run_requeued                | lease_lapsed_for, attempts                                   |
| cancel_requested            | by                                                           |
| run_cancelled               | by, stop_reason, error                                       |
| run_failed                  | stop_reason, error                                           |
| budget_exceeded             | type, limit                                                  |
| step_error                  | attempt, error, reply, + LLM facts                           |
| step_started                | step_number, tool, + LLM facts                               |
| step_completed              | step_number, tool, done, success, error, duration_ms,        |
|                             | attempts, approval_id, + LLM facts                           |
| tool_error                  | step_number, tool, error, timed_out                          |
| tool_denied                 | step_number, tool, reason                                    |
| tool_outcome_unknown        | step_number, tool                                            |
| objective_completed         | summary                                                      |
| approval_requested          | approval_id, step_number, tool, args, reason, expires_at,    |
|                             | + LLM facts                                                  |
| approval_decided            | approval_id, decision, by, reason, tool, args_hash,          |
|                             | original_args_hash, approved_args                            |
| approval_expired            | approval_id, tool, expired_at                                |
| approval_tampered           | approval_id, args_hash, problem                              |
| approval_rejection_observed | approval_id, step_number                                     |
| approved_call_started       | approval_id, tool, args_hash                                 |
| notification_sent           | approval_id, channel, kind, recipient, attempt               |
| notification_failed         | approval_id, channel, kind, recipient, attempt, error,       |
|                             | will_retry                                                   |
| notification_cancelled      | approval_id, channel, kind, recipient, attempt, reason       |

LLM facts are model, prompt_tokens, completion_tokens, latency_ms and fallback_from (the
models that failed before this one answered, or None).

Step digests: the Store adds to the first event of every write of a step's rows the step's
id and digests of what it wrote (`step_id`, and `step_hash`, `call_hash`, `outcome_hash` as
the write set them; `store.ledger`), so that `ledger verify` finds a step edited afterwards.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from agent_core.models import NewEvent


class EventType(StrEnum):
    RUN_QUEUED = "run_queued"
    RUN_SKIPPED = "run_skipped"
    RUN_CLAIMED = "run_claimed"
    RUN_STARTED = "run_started"
    RUN_RELEASED = "run_released"
    RUN_PAUSED = "run_paused"
    RUN_REQUEUED = "run_requeued"
    CANCEL_REQUESTED = "cancel_requested"
    RUN_CANCELLED = "run_cancelled"
    RUN_FAILED = "run_failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    STEP_ERROR = "step_error"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    TOOL_ERROR = "tool_error"
    TOOL_DENIED = "tool_denied"
    TOOL_OUTCOME_UNKNOWN = "tool_outcome_unknown"
    OBJECTIVE_COMPLETED = "objective_completed"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_TAMPERED = "approval_tampered"
    APPROVAL_REJECTION_OBSERVED = "approval_rejection_observed"
    APPROVED_CALL_STARTED = "approved_call_started"
    NOTIFICATION_SENT = "notification_sent"
    NOTIFICATION_FAILED = "notification_failed"
    NOTIFICATION_CANCELLED = "notification_cancelled"


def _event(event_type: EventType, **data: Any) -> NewEvent:
    # Validating these two fields is cheaper than pydantic's model_construct.
    return NewEvent(event_type=event_type.value, data=data)


# --- the run's life -------------------------------------------------------------------------


def run_queued(
    *, objective_id: str, run_number: int, trigger: str, slot: datetime | None = None
) -> NewEvent:
    """A run was created and waits for a worker (`slot`: the cron slot of a scheduled run)."""
    return _event(
        EventType.RUN_QUEUED,
        objective_id=objective_id,
        run_number=run_number,
        trigger=trigger,
        slot=slot,
    )


def run_skipped(
    *, objective_id: str, run_number: int, trigger: str, slot: datetime, active_run_id: str
) -> NewEvent:
    """A schedule slot came while the objective's previous run was still active."""
    return _event(
        EventType.RUN_SKIPPED,
        objective_id=objective_id,
        run_number=run_number,
        trigger=trigger,
        slot=slot,
        active_run_id=active_run_id,
    )


def run_claimed(*, owner: str, from_status: str, lease_lapsed_for: str | None = None) -> NewEvent:
    """A worker took the run (`lease_lapsed_for`: the worker that died holding it)."""
    return _event(
        EventType.RUN_CLAIMED,
        owner=owner,
        from_status=from_status,
        lease_lapsed_for=lease_lapsed_for,
    )


def run_started(
    *,
    objective_id: str,
    attempt: int,
    owner: str,
    resumed_at_step: int,
    budget: dict[str, int],
    previous_run_id: str | None,
) -> NewEvent:
    """A worker began (or resumed) executing the run, with the budget it applies."""
    return _event(
        EventType.RUN_STARTED,
        objective_id=objective_id,
        attempt=attempt,
        owner=owner,
        resumed_at_step=resumed_at_step,
        budget=budget,
        previous_run_id=previous_run_id,
    )


def run_released(*, owner: str | None, reason: str) -> NewEvent:
    """The worker gave the run back to the queue (shutdown, Ctrl-C): another resumes it."""
    return _event(EventType.RUN_RELEASED, owner=owner, reason=reason)


def run_paused(*, owner: str | None, reason: str) -> NewEvent:
    """The worker put the run back to waiting for an admin (its approval still pending)."""
    return _event(EventType.RUN_PAUSED, owner=owner, reason=reason)


def run_requeued(*, lease_lapsed_for: str | None, attempts: int) -> NewEvent:
    """The run's worker stopped answering; the run waits for another one."""
    return _event(EventType.RUN_REQUEUED, lease_lapsed_for=lease_lapsed_for, attempts=attempts)


def cancel_requested(*, by: str) -> NewEvent:
    """An admin asked a running run to stop before its next step."""
    return _event(EventType.CANCEL_REQUESTED, by=by)


def run_cancelled(*, by: str | None, stop_reason: str, error: str | None) -> NewEvent:
    """The run ended because an admin cancelled it."""
    return _event(EventType.RUN_CANCELLED, by=by, stop_reason=stop_reason, error=error)


def run_failed(*, stop_reason: str, error: str) -> NewEvent:
    """The run ended without reaching its objective; `stop_reason` says why."""
    return _event(EventType.RUN_FAILED, stop_reason=stop_reason, error=error)


def budget_exceeded(*, budget_type: str, limit: int) -> NewEvent:
    """A budget (steps, tool_calls, duration, tokens) forbids another step."""
    return _event(EventType.BUDGET_EXCEEDED, type=budget_type, limit=limit)


# --- steps ------------------------------------------------------------------------------------


def llm_facts(
    *,
    model: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: int | None,
    fallback_from: list[str] | None = None,
) -> dict[str, Any]:
    """Which model answered a step, what it cost and how long it took."""
    return {
        "model": model,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "latency_ms": latency_ms,
        "fallback_from": fallback_from or None,
    }


NO_LLM = llm_facts(model=None, prompt_tokens=0, completion_tokens=0, latency_ms=None)


def step_error(*, attempt: int, error: str, reply: str, llm: dict[str, Any]) -> NewEvent:
    """The LLM's reply was not a valid step; it is sent back for repair."""
    return _event(EventType.STEP_ERROR, attempt=attempt, error=error, reply=reply, **llm)


def step_started(*, step_number: int, tool: str, llm: dict[str, Any]) -> NewEvent:
    """A side-effecting call is about to run (recorded first: at most once)."""
    return _event(EventType.STEP_STARTED, step_number=step_number, tool=tool, **llm)


def step_completed(
    *,
    step_number: int,
    tool: str | None,
    done: bool = False,
    success: bool = True,
    error: str | None = None,
    duration_ms: int | None = None,
    attempts: int = 0,
    approval_id: str | None = None,
    llm: dict[str, Any] = NO_LLM,
) -> NewEvent:
    """A step ended: the final answer (`done`), or a tool call that succeeded or failed."""
    return _event(
        EventType.STEP_COMPLETED,
        step_number=step_number,
        tool=tool,
        done=done,
        success=success,
        error=error,
        duration_ms=duration_ms,
        attempts=attempts,
        approval_id=approval_id,
        **llm,
    )


def tool_error(*, step_number: int, tool: str, error: str | None, timed_out: bool) -> NewEvent:
    """A tool call failed (or ran out of time)."""
    return _event(
        EventType.TOOL_ERROR, step_number=step_number, tool=tool, error=error, timed_out=timed_out
    )


def tool_denied(*, step_number: int, tool: str, reason: str) -> NewEvent:
    """Policy refused a call; `reason` is what the agent was told."""
    return _event(EventType.TOOL_DENIED, step_number=step_number, tool=tool, reason=reason)


def tool_outcome_unknown(*, step_number: int, tool: str | None) -> NewEvent:
    """Whether a call took effect is unknown: its worker died while it was in flight, or the
    tool sent its request and got no answer (ToolOutcomeUnknown). It is never repeated."""
    return _event(EventType.TOOL_OUTCOME_UNKNOWN, step_number=step_number, tool=tool)


def objective_completed(*, summary: str | None) -> NewEvent:
    """The agent said the objective is achieved."""
    return _event(EventType.OBJECTIVE_COMPLETED, summary=summary)


# --- approvals --------------------------------------------------------------------------------


def approval_requested(
    *,
    approval_id: str,
    step_number: int,
    tool: str,
    args: dict[str, Any],
    reason: str,
    expires_at: datetime,
    llm: dict[str, Any],
) -> NewEvent:
    """The run paused: a human must approve this exact call before it runs."""
    return _event(
        EventType.APPROVAL_REQUESTED,
        approval_id=approval_id,
        step_number=step_number,
        tool=tool,
        args=args,
        reason=reason,
        expires_at=expires_at,
        **llm,
    )


def approval_decided(
    *,
    approval_id: str,
    decision: str,
    by: str,
    reason: str | None,
    tool: str,
    args_hash: str,
    original_args_hash: str | None = None,
    approved_args: dict[str, Any] | None = None,
) -> NewEvent:
    """An admin approved or rejected. When they changed the arguments before approving,
    `approved_args` are what will run (`args_hash` is their hash) and `original_args_hash`
    is the hash of what the agent asked for (its arguments are in approval_requested)."""
    return _event(
        EventType.APPROVAL_DECIDED,
        approval_id=approval_id,
        decision=decision,
        by=by,
        reason=reason,
        tool=tool,
        args_hash=args_hash,
        original_args_hash=original_args_hash,
        approved_args=approved_args,
    )


def approval_expired(*, approval_id: str, tool: str, expired_at: datetime) -> NewEvent:
    """Nobody decided in time: the call is not made."""
    return _event(
        EventType.APPROVAL_EXPIRED, approval_id=approval_id, tool=tool, expired_at=expired_at
    )


def approval_tampered(*, approval_id: str, args_hash: str, problem: str | None = None) -> NewEvent:
    """The stored call no longer matches what was approved, or the approval's binding or
    decision is not signed by the runtime (`problem` says which): it is not made."""
    return _event(
        EventType.APPROVAL_TAMPERED, approval_id=approval_id, args_hash=args_hash, problem=problem
    )


def approval_rejection_observed(*, approval_id: str, step_number: int) -> NewEvent:
    """The agent was told its call was rejected."""
    return _event(
        EventType.APPROVAL_REJECTION_OBSERVED, approval_id=approval_id, step_number=step_number
    )


def approved_call_started(*, approval_id: str, tool: str, args_hash: str) -> NewEvent:
    """The approved call is about to run, exactly once."""
    return _event(
        EventType.APPROVED_CALL_STARTED, approval_id=approval_id, tool=tool, args_hash=args_hash
    )


# --- notifications ----------------------------------------------------------------------------


def notification_facts(
    *, approval_id: str, channel: str, kind: str, recipient: str | None, attempt: int
) -> dict[str, Any]:
    """Which message about which approval, to whom, and which attempt this is."""
    return {
        "approval_id": approval_id,
        "channel": channel,
        "kind": kind,
        "recipient": recipient,
        "attempt": attempt,
    }


def notification_sent(*, notice: dict[str, Any]) -> NewEvent:
    return _event(EventType.NOTIFICATION_SENT, **notice)


def notification_failed(*, notice: dict[str, Any], error: str, will_retry: bool) -> NewEvent:
    return _event(EventType.NOTIFICATION_FAILED, **notice, error=error, will_retry=will_retry)


def notification_cancelled(*, notice: dict[str, Any], reason: str) -> NewEvent:
    """Not sent: the approval was decided or expired before the message went out."""
    return _event(EventType.NOTIFICATION_CANCELLED, **notice, reason=reason)
