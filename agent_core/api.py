"""The public face of agent_core: everything the dashboard (app.py and pages/) may use.

Pages import from here only (an import-linter contract enforces it), so the runtime's
internals can move without breaking a page. What is here is what the CLI uses too: the same
services to act (create an objective, start or cancel a run, decide an approval), the same
Store reads to show, and the same wording of domain facts.
"""

from __future__ import annotations

from agent_core.approvals import decide
from agent_core.config import Settings, load_settings, redact_url, settings_summary
from agent_core.errors import (
    AgentRuntimeError,
    ConfigError,
    Conflict,
    InvalidFields,
    InvalidInput,
    NotFound,
    StoreUnavailable,
)
from agent_core.events import EventType
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Event,
    Objective,
    RiskLevel,
    Run,
    RunStatus,
    RunTrigger,
    Step,
    StepStatus,
    StopReason,
    ToolCall,
    ToolCallStatus,
    WorkerInfo,
)
from agent_core.objectives import (
    BUDGET_FIELDS,
    OBJECTIVE_FIELDS,
    create_objective,
    objective_fields,
    objective_spec,
    update_objective,
)
from agent_core.render import (
    APPROVAL_STATUS_LABELS,
    RUN_STATUS_LABELS,
    STOP_REASONS,
    TOOL_CALL_STATUS_LABELS,
    UNSUCCESSFUL_CALLS,
    approval_request_sentence,
    cut,
    describe_call,
    describe_result,
    event_sentence,
    format_duration,
    format_time,
    refusal_sentence,
    run_counters,
    run_headline,
    run_outcome,
    run_status_label,
    step_error,
    step_sentence,
    stop_reason_sentence,
    why_undecidable,
)
from agent_core.runs import cancel_run, ensure_enabled, live_workers, start_run
from agent_core.runtime import Runtime, build_tools, open_runtime
from agent_core.store import Store
from agent_core.tools import Tool, ToolRegistry

__all__ = [
    "APPROVAL_STATUS_LABELS",
    "BUDGET_FIELDS",
    "OBJECTIVE_FIELDS",
    "RUN_STATUS_LABELS",
    "STOP_REASONS",
    "TOOL_CALL_STATUS_LABELS",
    "UNSUCCESSFUL_CALLS",
    "AgentRuntimeError",
    "Approval",
    "ApprovalStatus",
    "ConfigError",
    "Conflict",
    "Event",
    "EventType",
    "InvalidFields",
    "InvalidInput",
    "NotFound",
    "Objective",
    "RiskLevel",
    "Run",
    "RunStatus",
    "RunTrigger",
    "Runtime",
    "Settings",
    "Step",
    "StepStatus",
    "StopReason",
    "Store",
    "StoreUnavailable",
    "Tool",
    "ToolCall",
    "ToolCallStatus",
    "ToolRegistry",
    "WorkerInfo",
    "approval_request_sentence",
    "build_tools",
    "cancel_run",
    "create_objective",
    "cut",
    "decide",
    "describe_call",
    "describe_result",
    "ensure_enabled",
    "event_sentence",
    "format_duration",
    "format_time",
    "live_workers",
    "load_settings",
    "objective_fields",
    "objective_spec",
    "open_runtime",
    "redact_url",
    "refusal_sentence",
    "run_counters",
    "run_headline",
    "run_outcome",
    "run_status_label",
    "settings_summary",
    "start_run",
    "step_error",
    "step_sentence",
    "stop_reason_sentence",
    "update_objective",
    "why_undecidable",
]
