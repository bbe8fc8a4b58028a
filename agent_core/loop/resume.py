"""Resume: what a run found unfinished when this worker picks it up.

- A call found started but never finished (the worker died during it) may or may not have
  taken effect: it is marked unknown, never repeated, and the agent is told.
- A step paused for approval gets the admin's decision: exactly the approved call runs,
  after checking it is still what was approved (its hash, and its binding signed under the
  secret key when approval was requested or changed), that the decision was signed by the
  runtime when it was made, and that it is still in time; a rejection (signed too) becomes
  an observation the agent adapts to; an undecided one pauses again. A call that fails a
  check is never made: the run fails with approval_invalid and the ledger says why.
"""

from __future__ import annotations

from agent_core import events as ledger_events
from agent_core.config import ledger_key
from agent_core.errors import ConfigError
from agent_core.loop.acting import outcome_of, result_events, run_tool, tool_tokens
from agent_core.loop.session import RunEnded, Session
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Run,
    RunStatus,
    Step,
    StepOutcome,
    StepStatus,
    StopReason,
    ToolCall,
    ToolCallStatus,
)
from agent_core.store.ledger import tool_args_hash
from agent_core.store.signing import LedgerKey
from agent_core.tools import gateway


def settle_interrupted_calls(session: Session, run: Run) -> Run:
    """Mark every call interrupted by a crash as outcome unknown, and tell the agent so that
    it checks the effect before acting again. The call is never repeated."""
    store = session.context.store
    for step, call in store.interrupted_calls(run.id):
        error = (
            f"the call to {step.tool} was interrupted (the worker stopped during it): it may "
            "or may not have taken effect. Do not repeat it blindly; check its effect first."
        )
        run = store.finish_step(
            run.id,
            step.id,
            StepOutcome(
                step_status=StepStatus.FAILED,
                result={"error": error, "outcome": "unknown"},
                tool_call_status=ToolCallStatus.UNKNOWN,
                tool_error=error,
            ),
            tool_call_id=call.id if call else None,
            run=session.changes(),
            new_events=[
                ledger_events.tool_outcome_unknown(step_number=step.step_number, tool=step.tool)
            ],
        )
    return run


def apply_decision(session: Session, run: Run) -> Run:
    """Carry out the admin's decision on the step the run paused at, and return the run to
    go on with. Raises RunEnded when the run cannot go on: still undecided (paused again),
    or the approved call may not run (changed since, or expired: the run fails)."""
    store = session.context.store
    found = store.step_awaiting_decision(run.id)
    if found is None:
        return run
    step, call, approval = found
    if approval.status is ApprovalStatus.PENDING:  # not decided: back to waiting
        waiting = ledger_events.run_paused(
            owner=session.context.owner, reason="its approval is still pending"
        )
        raise RunEnded(
            store.update_run(
                run.id, session.changes(status=RunStatus.PAUSED, release_lease=True), [waiting]
            )
        )
    if approval.status not in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
        return run
    try:
        key = ledger_key(session.context.settings)
    except ConfigError as exc:
        error = f"the decision on this call cannot be checked: {exc}"
        store.close_unapproved_call(
            approval,
            ToolCallStatus.DENIED,
            error,
            session.changes(),
            [
                ledger_events.tool_error(
                    step_number=step.step_number,
                    tool=approval.tool_name,
                    error=error,
                    timed_out=False,
                )
            ],
        )
        session.end(run, RunStatus.FAILED, StopReason.CONFIG_ERROR, str(exc))
    if approval.status is ApprovalStatus.REJECTED:
        _refuse_if(session, run, approval, unsigned_decision(approval, key))
        reason = f": {approval.decision_reason}" if approval.decision_reason else ""
        error = f"the admin ({approval.decided_by}) rejected this call{reason}"
        return store.close_unapproved_call(
            approval,
            ToolCallStatus.REJECTED,
            error,
            session.changes(),
            [
                ledger_events.approval_rejection_observed(
                    approval_id=approval.id, step_number=step.step_number
                )
            ],
        )
    if not approval_intact(approval, call):
        _refuse_if(
            session,
            run,
            approval,
            "the call stored for this approval was changed after it was requested "
            "(its hash no longer matches)",
        )
    _refuse_if(session, run, approval, unbound(approval, key) or unsigned_decision(approval, key))
    if approval.expires_at <= store.now():
        error = "the approval expired before the approved call could run"
        store.close_unapproved_call(
            approval,
            ToolCallStatus.EXPIRED,
            error,
            session.changes(),
            [
                ledger_events.approval_expired(
                    approval_id=approval.id,
                    tool=approval.tool_name,
                    expired_at=approval.expires_at,
                )
            ],
        )
        session.end(run, RunStatus.FAILED, StopReason.APPROVAL_EXPIRED, error)
    if store.approved_call_started(run.id, approval.id):
        _refuse_if(
            session,
            run,
            approval,
            "the ledger shows this approved call was already started once, yet it was found "
            "waiting to run again",
        )
    return _run_approved_call(session, run, step, call, approval)


def _run_approved_call(
    session: Session, run: Run, step: Step, call: ToolCall, approval: Approval
) -> Run:
    """Exactly the approved call, once: it is moved to started first, and only the worker
    that moved it runs it."""
    store = session.context.store
    tool = session.context.tools.get(approval.tool_name)
    parsed = gateway.validate_args(tool, approval.args) if tool else "the tool is gone"
    if not store.start_approved_call(approval, session.changes()):
        return store.get_run(run.id)  # another resume got there first
    if tool is None or isinstance(parsed, str):
        result = gateway.failed(f"{approval.tool_name} cannot run: {parsed}")
    else:
        result = run_tool(session, tool, parsed, run.id)
    outcome = outcome_of(result)
    if approval.changed:  # the agent learns what really ran
        outcome = outcome.model_copy(
            update={
                "result": {
                    "note": f"the admin ({approval.decided_by}) changed the arguments before "
                    "approving: the call ran with approved_args, not the ones you proposed",
                    "approved_args": approval.args,
                    "result": outcome.result,
                }
            }
        )
    return store.finish_step(
        run.id,
        step.id,
        outcome,
        tool_call_id=call.id,
        run=session.changes(**tool_tokens(result)),
        new_events=result_events(
            step.step_number, approval.tool_name, result, approval_id=approval.id
        ),
    )


def _refuse_if(session: Session, run: Run, approval: Approval, problem: str | None) -> None:
    """With a `problem`, the call is not made: it is closed as denied, the ledger records
    why (approval_tampered), and the run fails with approval_invalid (RunEnded)."""
    if problem is None:
        return
    error = f"{problem}: it was not executed"
    session.context.store.close_unapproved_call(
        approval,
        ToolCallStatus.DENIED,
        error,
        session.changes(),
        [
            ledger_events.approval_tampered(
                approval_id=approval.id, args_hash=approval.args_hash, problem=problem
            )
        ],
    )
    session.end(run, RunStatus.FAILED, StopReason.APPROVAL_INVALID, error)


def unbound(approval: Approval, key: LedgerKey) -> str | None:
    """Why the approval is not what was bound (signed) when approval was requested, or when
    the admin approved it: its tool and arguments, run, step, call and expiry; None when it
    is."""
    if approval.binding is None:
        return (
            "this approval carries no signed binding of its call (it was approved before "
            "approvals were signed, or the binding was removed from the database)"
        )
    if key.matches(approval.binding, key.binding_of(approval)):
        return None
    if key.matches(approval.binding, key.first_binding_of(approval)):
        return (
            "this approval was approved before approvals were bound to their run and expiry "
            "(an earlier version): run the objective again to ask for it anew"
        )
    return (
        "the call stored for this approval was changed after it was requested, or the "
        "approval was moved to another run or step or given another expiry (its signed "
        "binding no longer matches)"
    )


def unsigned_decision(approval: Approval, key: LedgerKey) -> str | None:
    """Why the recorded decision is not one the runtime signed when an admin made it (who,
    when, what, why); None when it is."""
    if approval.decision_signature is None:
        return (
            f"the decision recorded for this approval ({approval.status}) is not signed: it "
            "was not made through the runtime"
        )
    expected = key.decision(
        approval_id=approval.id,
        decision=approval.status,
        by=approval.decided_by,
        decided_at=approval.decided_at,
        reason=approval.decision_reason,
        args_hash=approval.args_hash,
    )
    if not key.matches(approval.decision_signature, expected):
        return (
            "the decision recorded for this approval was changed after it was made "
            "(its signature no longer matches)"
        )
    return None


def approval_intact(approval: Approval, call: ToolCall) -> bool:
    """The approval and its call still hold what the admin was shown: the same tool and
    arguments, whose hash is the one recorded when approval was requested."""
    return (
        approval.tool_name == call.tool_name
        and tool_args_hash(approval.tool_name, approval.args) == approval.args_hash
        and tool_args_hash(call.tool_name, call.args) == approval.args_hash
        and call.args_hash == approval.args_hash
    )
