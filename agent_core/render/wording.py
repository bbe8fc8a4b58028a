"""Domain facts worded for a business admin: what a status or a stop reason means, what a
step did, why a call was refused, what an event in the ledger records.

The CLI, the dashboard and the notifications all word these facts through this module, so
an admin reads the same sentence wherever they look. Every function is pure: it gets the
records and returns text. Event payloads are read tolerantly (`.get`), because events
written by older versions keep their stored shape.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from agent_core.events import EventType
from agent_core.models import (
    FAILED_CALL_STATUSES,
    Approval,
    ApprovalStatus,
    Event,
    LedgerReport,
    NewEvent,
    Run,
    RunStatus,
    Step,
    StepStatus,
    StopReason,
    ToolCall,
    ToolCallStatus,
)
from agent_core.render.text import counted, cut, format_duration, format_time

# --- statuses ---------------------------------------------------------------------------------

RUN_STATUS_LABELS: Mapping[RunStatus, str] = {
    RunStatus.QUEUED: "waiting for a worker",
    RunStatus.RUNNING: "running",
    RunStatus.PAUSED: "waiting for approval",
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
    RunStatus.SKIPPED: "skipped",
}

STOP_REASONS: Mapping[StopReason, str] = {
    StopReason.DONE: "The agent reached the objective.",
    StopReason.CANCELLED: "An admin cancelled the run.",
    StopReason.BUDGET_STEPS: "The run used all the steps its budget allows before finishing.",
    StopReason.BUDGET_TOOL_CALLS: (
        "The run used all the tool calls its budget allows before finishing."
    ),
    StopReason.BUDGET_DURATION: "The run ran out of the time its budget allows.",
    StopReason.BUDGET_TOKENS: (
        "The run used all the language-model tokens its budget allows before finishing."
    ),
    StopReason.LLM_ERROR: "The language model could not be reached or answered with an error.",
    StopReason.LLM_TIMEOUT: (
        "The language model did not answer within the time one call is allowed."
    ),
    StopReason.INVALID_OUTPUT: (
        "The language model kept answering in a form the agent cannot use, even after being "
        "asked to correct it."
    ),
    StopReason.APPROVAL_EXPIRED: "Nobody approved or rejected the waiting action in time.",
    StopReason.APPROVAL_INVALID: (
        "The action waiting for approval was changed after it was requested, or its approval "
        "was not made through the runtime, so it was not carried out."
    ),
    StopReason.CONFIG_ERROR: "A setting the run needs is missing or wrong.",
    StopReason.WORKER_LOST: "The worker executing the run stopped answering too many times.",
    StopReason.PREVIOUS_RUN_ACTIVE: (
        "Skipped: the previous run of this objective was still going when this one was due."
    ),
    StopReason.INTERNAL_ERROR: "The runtime met an unexpected error.",
}

TOOL_CALL_STATUS_LABELS: Mapping[ToolCallStatus, str] = {
    ToolCallStatus.STARTED: "in progress",
    ToolCallStatus.SUCCEEDED: "succeeded",
    ToolCallStatus.FAILED: "failed",
    ToolCallStatus.DENIED: "refused by policy",
    ToolCallStatus.AWAITING_APPROVAL: "waiting for approval",
    ToolCallStatus.REJECTED: "rejected by an admin",
    ToolCallStatus.EXPIRED: "not run: the approval expired",
    ToolCallStatus.UNKNOWN: "outcome unknown (interrupted or no answer)",
}

APPROVAL_STATUS_LABELS: Mapping[ApprovalStatus, str] = {
    ApprovalStatus.PENDING: "waiting for a decision",
    ApprovalStatus.APPROVED: "approved",
    ApprovalStatus.REJECTED: "rejected",
    ApprovalStatus.EXPIRED: "expired without a decision",
    ApprovalStatus.CANCELLED: "cancelled with its run",
}


def run_status_label(status: RunStatus) -> str:
    return RUN_STATUS_LABELS[status]


def stop_reason_sentence(reason: StopReason | str | None) -> str:
    if reason is None:
        return ""
    try:
        return STOP_REASONS[StopReason(reason)]
    except ValueError:
        return f"Stopped ({reason})."


def run_outcome(run: Run, failed_calls: int = 0) -> str:
    """A run's state at a glance: "completed, but 2 tool calls did not succeed"."""
    text = run_status_label(run.status)
    if run.status is RunStatus.RUNNING and run.cancel_requested_at is not None:
        text += " (stopping: cancel requested)"
    if failed_calls:
        plural = "s" if failed_calls > 1 else ""
        joiner = ", but" if run.status is RunStatus.COMPLETED else ";"
        text += f"{joiner} {failed_calls} tool call{plural} did not succeed"
    return text


def run_headline(run: Run, failed_calls: int = 0) -> str:
    """How the run ended and why, or what it is doing (its `error` holds the details)."""
    text = f"Run #{run.run_number} {run_outcome(run, failed_calls)}."
    if run.stop_reason and run.stop_reason is not StopReason.DONE:
        text += " " + stop_reason_sentence(run.stop_reason)
    return text


def run_log_line(run: Run, waiting_for: Approval | None = None) -> str:
    """What a worker logs when a run stops executing: its state and why, in one line."""
    text = f"run {run.id} (#{run.run_number}) {run.status}"
    if run.stop_reason is not None:
        text += f" ({run.stop_reason}: {stop_reason_sentence(run.stop_reason)}"
        if run.error and run.stop_reason not in (StopReason.DONE, StopReason.CANCELLED):
            text += f" Details: {cut(' '.join(run.error.split()), 300)}"
        text += ")"
    if waiting_for is not None:
        text += (
            f": waiting for approval {waiting_for.id} of {waiting_for.tool_name} "
            f"({approval_request_sentence(waiting_for)})"
        )
    return text


def run_counters(run: Run) -> str:
    duration = format_duration(run.active_ms) if run.active_ms else "-"
    return (
        f"{counted(run.steps_count, 'step')}, {counted(run.tool_calls_count, 'tool call')}, "
        f"{run.total_tokens:,} tokens, {duration} of work"
    )


def why_not_claimable(run: Run) -> str:
    """Why a run cannot be executed now, in one sentence."""
    if run.status is RunStatus.PAUSED:
        return "it is paused, waiting for an approval decision"
    if run.status is RunStatus.RUNNING:
        until = format_time(run.lease_expires_at)
        return f"it is running on {run.lease_owner} (lease until {until})"
    return f"it has ended ({run.status})"


def why_undecidable(approval: Approval, run: Run, now: datetime) -> str | None:
    """Why this approval cannot be decided now, in one sentence; None when it can."""
    if approval.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
        when = approval.decided_at.strftime("%Y-%m-%d %H:%M UTC") if approval.decided_at else "?"
        return (
            f"approval {approval.id} was already {approval.status} "
            f"by {approval.decided_by} at {when}"
        )
    if approval.status is ApprovalStatus.EXPIRED or approval.expires_at <= now:
        return (
            f"approval {approval.id} expired at {approval.expires_at:%Y-%m-%d %H:%M UTC} "
            "and can no longer be decided"
        )
    if approval.status is ApprovalStatus.CANCELLED or run.status is RunStatus.CANCELLED:
        return f"approval {approval.id} belongs to run {run.id}, which was cancelled"
    if run.status is not RunStatus.PAUSED:
        return f"run {run.id} is {run.status}, not waiting for this approval"
    return None


# --- objectives -------------------------------------------------------------------------------

# Each field of an objective as an admin knows it: its problems are said with these names, the
# dashboard labels its budget fields and the schedule picker's typed fields with them, and the
# CLI puts its option name in front.
OBJECTIVE_FIELD_NAMES: Mapping[str, str] = {
    "title": "Title",
    "description": "Description",
    "tools_allowed": "Tools",
    "max_steps": "Steps",
    "max_tool_calls": "Tool calls",
    "max_duration_ms": "Duration (ms)",
    "max_tokens": "Tokens",
    "risk_level": "Risk level",
    "schedule": "Schedule",
    "schedule_preset": "Schedule",
    "schedule_hour": "Hour",
    "schedule_minute": "Minutes past the hour",
    "schedule_weekday": "Day of the week",
    "schedule_day": "Day of the month",
    "timezone": "Time zone",
    "enabled": "Enabled",
}


def unknown_tool_problem(name: str, known: Collection[str]) -> str:
    """Why a tool an objective names is refused, with the tools there are to choose from."""
    tools = ", ".join(sorted(known)) or "none"
    return f"Unknown tool {name!r}; the tools are: {tools}."


# --- tool calls -------------------------------------------------------------------------------


def _quoted(value: Any, limit: int = 60) -> str:
    return f"“{cut(str(value), limit)}”"


def _filters(filters: Any) -> str:
    if not filters:
        return ""
    if isinstance(filters, Mapping):
        parts = [f"{key} {_condition(value)}" for key, value in filters.items()]
        return " where " + " and ".join(parts)
    return f" filtered by {cut(json.dumps(filters, ensure_ascii=False), 80)}"


def _condition(value: Any) -> str:
    words = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
    if isinstance(value, Mapping):
        parts = []
        for op, operand in value.items():
            if op in words:
                parts.append(f"{words[op]} {operand!r}")
            elif op == "in":
                parts.append(f"in {operand!r}")
            elif op == "is_null":
                parts.append("is empty" if operand else "is not empty")
            elif op == "contains":
                parts.append(f"contains {operand!r}")
            else:
                parts.append(f"{op} {operand!r}")
        return " and ".join(parts)
    return f"= {value!r}"


def _data_call(verb: str) -> Any:
    def describe(args: Mapping[str, Any]) -> str:
        table = args.get("table", "?")
        if verb == "read":
            return f"read rows of {table}{_filters(args.get('filters'))}"
        if verb == "count":
            return f"count rows of {table}{_filters(args.get('filters'))}"
        if verb == "create":
            columns = ", ".join(map(str, (args.get("data") or {}).keys()))
            return f"add a row to {table} ({columns})"
        if verb == "update":
            columns = ", ".join(map(str, (args.get("data") or {}).keys()))
            return f"change {columns} of row {args.get('id')!r} in {table}"
        return f"delete row {args.get('id')!r} from {table}"

    return describe


_CALL_PHRASES: Mapping[str, Any] = {
    "read_database": _data_call("read"),
    "count_database": _data_call("count"),
    "create_data": _data_call("create"),
    "update_data": _data_call("update"),
    "delete_data": _data_call("delete"),
    "analyze_leads": lambda args: "analyse the leads",
    "send_email": lambda args: (
        f"send an email to {args.get('to', '?')} with the subject {_quoted(args.get('subject'))}"
    ),
    "send_whatsapp": lambda args: f"send a WhatsApp message to {args.get('to', '?')}",
    "generate_content": lambda args: f"write text for the prompt {_quoted(args.get('prompt'))}",
    "wix_search_products": lambda args: "search the shop's products",
    "wix_search_orders": lambda args: "search the shop's orders",
    "wix_create_coupon": lambda args: f"create the shop coupon {_quoted(args.get('code'))}",
}


def describe_call(tool: str | None, args: Mapping[str, Any] | None) -> str:
    """What a call does, as a phrase: "send an email to ana@example.com with the subject
    “Your quote”". Tools without a phrase of their own get "run TOOL (key=value, ...)"."""
    if not tool:
        return "finish"
    args = args or {}
    phrase = _CALL_PHRASES.get(tool)
    if phrase is not None:
        try:
            return str(phrase(args))
        except Exception:  # noqa: BLE001 - odd arguments fall back to the generic phrase
            pass
    shown = ", ".join(f"{key}={cut(_json(value), 40)}" for key, value in list(args.items())[:4])
    more = ", …" if len(args) > 4 else ""
    return f"run {tool} ({shown}{more})" if shown else f"run {tool}"


def describe_result(result: Any, max_chars: int = 300) -> str:
    """A tool's result as compact text, cut to `max_chars` with a visible marker."""
    if result is None:
        return "(no result)"
    text = result if isinstance(result, str) else _json(result)
    return cut(" ".join(text.split()), max_chars)


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def step_sentence(step: Step, call: ToolCall | None = None) -> str:
    """What the step did and how it went, in one sentence."""
    if step.tool is None:
        return f"Step {step.step_number}: the agent finished and wrote its summary."
    action = describe_call(step.tool, step.args)
    status = call.status if call is not None else None
    if status is None:
        outcome = {
            StepStatus.EXECUTING: "in progress",
            StepStatus.COMPLETED: "succeeded",
            StepStatus.FAILED: "failed",
            StepStatus.AWAITING_APPROVAL: "waiting for approval",
        }[step.status]
    else:
        outcome = TOOL_CALL_STATUS_LABELS[status]
    return f"Step {step.step_number}: {action} ({step.tool}) — {outcome}."


def step_error(step: Step, call: ToolCall | None = None) -> str | None:
    """Why the step's call did not succeed, as the agent was told; None when it did."""
    if call is not None and call.status not in FAILED_CALL_STATUSES:
        return None
    if call is not None and call.error:
        return call.error
    if step.status is StepStatus.FAILED and isinstance(step.result, Mapping):
        error = step.result.get("error")
        return str(error) if error else None
    return None


def refusal_sentence(reason: str) -> str:
    return f"Refused by policy: {reason}"


def approval_request_sentence(approval: Approval) -> str:
    """What the agent wants to do, for the approvals inbox and notifications."""
    return f"The agent wants to {describe_call(approval.tool_name, approval.args)}."


# --- ledger events ----------------------------------------------------------------------------


def _who(by: Any) -> str:
    return str(by) if by else "an admin"


def _step_event(data: Mapping[str, Any]) -> str:
    number = data.get("step_number", "?")
    if data.get("done"):
        return f"Step {number}: the agent said the objective is reached."
    tool = data.get("tool") or "?"
    if data.get("success", True) and not data.get("error"):
        text = f"Step {number}: {tool} succeeded"
    else:
        text = f"Step {number}: {tool} failed: {data.get('error') or 'no reason given'}"
    if data.get("duration_ms") is not None:
        text += f" in {format_duration(data['duration_ms'])}"
    return text + "."


def _model(data: Mapping[str, Any]) -> str:
    if not data.get("model"):
        return ""
    tokens = (data.get("prompt_tokens") or 0) + (data.get("completion_tokens") or 0)
    text = f" ({data['model']}, {tokens:,} tokens)"
    if data.get("fallback_from"):
        text += " after a fallback"
    return text


def _notice(data: Mapping[str, Any]) -> str:
    channel = "Email" if data.get("channel") == "email" else "WhatsApp message"
    kind = "reminder" if data.get("kind") == "reminder" else "approval request"
    return f"{channel} ({kind}) to {data.get('recipient') or 'nobody'}"


def _describe_event(kind: EventType, data: Mapping[str, Any]) -> str:
    match kind:
        case EventType.RUN_QUEUED:
            slot = data.get("slot")
            return "Queued" + (f" for the schedule slot {slot}." if slot else " by an admin.")
        case EventType.RUN_SKIPPED:
            return "Skipped: the objective's previous run was still active."
        case EventType.RUN_CLAIMED:
            lapsed = data.get("lease_lapsed_for")
            text = f"Taken by worker {data.get('owner')}"
            return text + (f" after {lapsed} stopped answering." if lapsed else ".")
        case EventType.RUN_STARTED:
            resumed = data.get("resumed_at_step") or 0
            return f"Resumed after step {resumed}." if resumed else "Started."
        case EventType.RUN_RELEASED:
            return f"Given back to the queue ({data.get('reason')})."
        case EventType.RUN_PAUSED:
            return f"Waiting for an admin again ({data.get('reason')})."
        case EventType.RUN_REQUEUED:
            return "Its worker stopped answering: queued again to resume elsewhere."
        case EventType.CANCEL_REQUESTED:
            return f"{_who(data.get('by'))} asked the run to stop."
        case EventType.RUN_CANCELLED:
            return "Cancelled" + (f" by {data['by']}." if data.get("by") else ".")
        case EventType.RUN_FAILED:
            reason = stop_reason_sentence(data.get("stop_reason"))
            error = data.get("error")
            return f"Failed. {reason}" + (f" Details: {error}" if error else "")
        case EventType.BUDGET_EXCEEDED:
            return f"Budget reached: {data.get('type')} (limit {data.get('limit')})."
        case EventType.STEP_ERROR:
            return (
                f"The language model's reply could not be used (attempt {data.get('attempt')})"
                f"{_model(data)}: {data.get('error')}."
            )
        case EventType.STEP_STARTED:
            return f"Step {data.get('step_number')}: {data.get('tool')} started{_model(data)}."
        case EventType.STEP_COMPLETED:
            return _step_event(data) + (_model(data) if data.get("model") else "")
        case EventType.TOOL_ERROR:
            timed_out = " (timed out)" if data.get("timed_out") else ""
            return f"{data.get('tool')} failed{timed_out}: {data.get('error')}"
        case EventType.TOOL_DENIED:
            return f"{data.get('tool')}: " + refusal_sentence(str(data.get("reason")))
        case EventType.TOOL_OUTCOME_UNKNOWN:
            return (
                f"Step {data.get('step_number')}: {data.get('tool')} was interrupted or got no "
                "answer; whether it took effect is unknown, so it is not repeated."
            )
        case EventType.OBJECTIVE_COMPLETED:
            return "Objective reached: " + cut(str(data.get("summary") or ""), 300)
        case EventType.APPROVAL_REQUESTED:
            action = describe_call(data.get("tool"), data.get("args"))
            return f"Paused: the agent wants to {action}; an admin must approve."
        case EventType.APPROVAL_DECIDED:
            changed = " with changed arguments" if data.get("original_args_hash") else ""
            reason = f" ({data['reason']})" if data.get("reason") else ""
            who, decision = _who(data.get("by")), data.get("decision")
            return f"{who} {decision} {data.get('tool')}{changed}{reason}."
        case EventType.APPROVAL_EXPIRED:
            return f"The approval for {data.get('tool') or 'the call'} expired without a decision."
        case EventType.APPROVAL_TAMPERED:
            if data.get("problem"):
                return f"The approved call was not run: {data['problem']}."
            return "The call waiting for approval was changed after it was requested: not run."
        case EventType.APPROVAL_REJECTION_OBSERVED:
            return "The agent was told its call was rejected."
        case EventType.APPROVED_CALL_STARTED:
            return f"The approved {data.get('tool')} call started."
        case EventType.NOTIFICATION_SENT:
            return f"{_notice(data)} sent."
        case EventType.NOTIFICATION_FAILED:
            retry = " It will be tried again." if data.get("will_retry") else " Gave up."
            return f"{_notice(data)} failed: {data.get('error')}.{retry}"
        case EventType.NOTIFICATION_CANCELLED:
            return f"{_notice(data)} not sent: {data.get('reason')}."
    return kind.value  # pragma: no cover - every type has its sentence


def event_sentence(event: Event | NewEvent) -> str:
    """What a ledger event records (or is about to), in one sentence."""
    try:
        kind = EventType(event.event_type)
    except ValueError:
        return f"{event.event_type}: {cut(_json(event.data), 200)}"
    return _describe_event(kind, event.data)


# --- the ledger -------------------------------------------------------------------------------


def seal_summary(report: LedgerReport) -> str:
    """How far the seals go: "12 seals checked, the last (seal 12) written 2026-11-02
    09:05:00 UTC, 4 min ago", or that there is none yet."""
    if report.last_seal_at is None:
        return "no seal yet"
    age = format_duration((report.last_seal_age_s or 0) * 1000)
    return (
        f"{counted(report.seals_checked, 'seal')} checked, the last (seal {report.last_seal_seq}) "
        f"written {format_time(report.last_seal_at)}, {age} ago"
    )


def ledger_verdict(report: LedgerReport) -> str:
    """The ledger's verdict in one clause, as `ledger verify` and the System page say it:
    "ledger OK: 1,204 events in 31 runs verified", or which runs and seals fail."""
    if report.ok:
        return (
            f"ledger OK: {counted(report.events_checked, 'event')} in "
            f"{counted(report.runs_checked, 'run')} verified"
        )
    seals = (
        f" and {len({item.seal for item in report.seal_breaks})} of {report.seals_checked} seals"
        if report.seal_breaks
        else ""
    )
    # A deleted run still breaks (its seal names it) though it is no longer counted.
    broken = len({item.run_id for item in report.breaks})
    return (
        f"ledger BROKEN: verification fails for {counted(broken, 'run')}{seals} "
        f"({counted(report.runs_checked, 'run')} checked)"
    )


def ledger_report_lines(report: LedgerReport) -> list[str]:
    """`ledger verify`'s verdict: OK or BROKEN with each break by seal, or by run and event,
    then the warnings (what verification could not rule out)."""
    return [
        f"{ledger_verdict(report)}; {seal_summary(report)}",
        *(f"  seal {item.seal}: {item.problem}" for item in report.seal_breaks),
        *(f"  run {item.run_id} event {item.seq}: {item.problem}" for item in report.breaks),
        *(f"warning: {warning}" for warning in report.warnings),
    ]
