"""The closed sets that domain records move through: statuses, stop reasons, risk levels,
channels. Plain enums with no dependency, so that what only needs a name or a `choices=`
list (the CLI's parser, `--help`) need not load pydantic; `agent_core.models` re-exports
them where every layer has always imported them from."""

from __future__ import annotations

from enum import StrEnum


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RISK_RANK[self]


_RISK_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2}


class NotifyChannel(StrEnum):
    EMAIL = "email"
    WHATSAPP = "whatsapp"


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"


class NotificationKind(StrEnum):
    APPROVAL_REQUEST = "approval_request"
    REMINDER = "reminder"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # will be retried by maintenance
    GAVE_UP = "gave_up"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a schedule slot whose previous run was still active

    @property
    def is_final(self) -> bool:
        return self in FINAL_RUN_STATUSES


FINAL_RUN_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED}
)
ACTIVE_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED})


class StopReason(StrEnum):
    """Why a run ended. Budget exhaustion is a failure with its own reason, never 'done'."""

    DONE = "done"
    CANCELLED = "cancelled"
    BUDGET_STEPS = "budget_steps"
    BUDGET_TOOL_CALLS = "budget_tool_calls"
    BUDGET_DURATION = "budget_duration"
    BUDGET_TOKENS = "budget_tokens"
    LLM_ERROR = "llm_error"
    LLM_TIMEOUT = "llm_timeout"  # no answer within AGENT_LLM_TIMEOUT_S
    INVALID_OUTPUT = "invalid_output"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_INVALID = "approval_invalid"  # the stored call no longer matches what was approved
    CONFIG_ERROR = "config_error"
    WORKER_LOST = "worker_lost"
    PREVIOUS_RUN_ACTIVE = "previous_run_active"
    INTERNAL_ERROR = "internal_error"


class RunTrigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"


class StepStatus(StrEnum):
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    AWAITING_APPROVAL = "awaiting_approval"


class ToolCallStatus(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    AWAITING_APPROVAL = "awaiting_approval"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # started, never finished: a crash; side effects are not retried


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
