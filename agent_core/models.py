"""Domain types shared by every layer: what an objective, a run, a step, a tool call, a
ledger event and an approval are, and the closed sets of statuses they move through (defined
in agent_core.enums)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

# The closed sets live in agent_core.enums (no pydantic: the CLI's parser needs them);
# they are re-exported here, where every layer imports them from.
from agent_core.enums import (  # noqa: F401
    ACTIVE_RUN_STATUSES,
    FINAL_RUN_STATUSES,
    ApprovalStatus,
    NotificationKind,
    NotificationStatus,
    NotifyChannel,
    RiskLevel,
    RunStatus,
    RunTrigger,
    SmtpSecurity,
    StepStatus,
    StopReason,
    ToolCallStatus,
)
from agent_core.schedules import normalize_cron

TOOL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def storable_text(text: Any) -> Any:
    """`text` as both databases store it: without NUL characters, which PostgreSQL refuses
    in text (and SQLite keeps), and with each lone surrogate, which no UTF-8 text can hold
    (a JSON \\ud800 escape in a server's answer decodes to one), replaced by U+FFFD. Applied
    where text from outside (an admin, a tool, a server's reply) enters, so that a write
    does not fail on one and both databases store the same; anything else is returned as
    it is."""
    if not isinstance(text, str):
        return text
    if "\x00" in text:
        text = text.replace("\x00", "")
    if is_utf8_text(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def is_utf8_text(text: str) -> bool:
    """Whether `text` has no lone surrogate (ASCII text, the usual case, is told at once)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


MAX_ADMIN_NAME_CHARS = 200  # the columns that record who decided (decided_by)


def admin_name(by: str) -> str:
    """The name an admin acts under (a login, an identity provider's claim, --by or $USER),
    as it is recorded: storable, and cut to MAX_ADMIN_NAME_CHARS rather than refused, so
    that a long name never stops a decision or a cancel."""
    return storable_text(by)[:MAX_ADMIN_NAME_CHARS]


# Text from outside, as it is stored (see storable_text).
CleanText = Annotated[str, BeforeValidator(storable_text)]

# Bounds of the run budgets, shared by the AGENT_* settings and an objective's own budget, so
# that every budget computes as a date (no overflow) and stays a sane limit.
MAX_BUDGET_STEPS = 10_000
MAX_BUDGET_TOOL_CALLS = 100_000
MAX_BUDGET_DURATION_MS = 30 * 24 * 3600 * 1000  # 30 days
MAX_BUDGET_TOKENS = 10**12


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class Budget(BaseModel):
    """Per-objective overrides of the run budgets; None means the AGENT_* default.

    Stored and printed with the seed's camelCase keys (maxSteps, maxToolCalls, maxDurationMs).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
    )

    max_steps: int | None = Field(default=None, ge=1, le=MAX_BUDGET_STEPS)
    max_tool_calls: int | None = Field(default=None, ge=0, le=MAX_BUDGET_TOOL_CALLS)
    max_duration_ms: int | None = Field(default=None, ge=1, le=MAX_BUDGET_DURATION_MS)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_BUDGET_TOKENS)

    def as_document(self) -> dict[str, int]:
        return self.model_dump(by_alias=True, exclude_none=True)


class ObjectiveSpec(BaseModel):
    """What an admin writes to create or edit an objective; validated before it is stored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)

    title: CleanText = Field(min_length=1, max_length=200)
    description: CleanText = Field(min_length=1, max_length=20_000)
    tools_allowed: list[str] = Field(default_factory=list)
    budget: Budget = Field(default_factory=Budget)
    risk_level: RiskLevel = RiskLevel.MEDIUM
    schedule: str | None = None
    timezone: str = "UTC"
    enabled: bool = True

    @field_validator("tools_allowed")
    @classmethod
    def _tool_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not TOOL_NAME_PATTERN.match(name):
                raise ValueError(
                    f"tool name {name!r} is not valid: use lower-case letters, digits and _"
                )
        return list(dict.fromkeys(names))

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
            ) from None
        return name

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, expression: str | None) -> str | None:
        if expression is None or not expression.strip():
            return None
        return normalize_cron(expression)  # standard crontab: see agent_core/schedules.py


class Objective(_Record):
    id: str
    title: str
    description: str
    tools_allowed: list[str]
    budget: Budget
    risk_level: RiskLevel
    schedule: str | None
    timezone: str
    enabled: bool
    last_run_number: int
    created_at: datetime
    updated_at: datetime


class Run(_Record):
    id: str
    objective_id: str
    run_number: int
    status: RunStatus
    stop_reason: StopReason | None
    summary: str | None
    error: str | None
    trigger: RunTrigger
    previous_run_id: str | None
    steps_count: int
    tool_calls_count: int
    prompt_tokens: int
    completion_tokens: int
    event_seq: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    attempts: int
    cancel_requested_at: datetime | None
    active_ms: int
    schedule_slot: datetime | None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Step(_Record):
    id: str
    run_id: str
    step_number: int
    thought: str | None
    tool: str | None
    args: dict[str, Any] | None
    raw_output: str | None
    result: Any
    status: StepStatus
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int | None
    created_at: datetime
    completed_at: datetime | None
    usage: dict[str, Any] | None = None  # the LLM server's usage object, as it came


class ToolCall(_Record):
    id: str
    run_id: str
    step_id: str
    tool_name: str
    args: dict[str, Any]
    args_hash: str
    risk_level: RiskLevel
    status: ToolCallStatus
    result: Any
    error: str | None
    duration_ms: int | None
    attempts: int
    created_at: datetime
    completed_at: datetime | None

    @property
    def success(self) -> bool:
        return self.status is ToolCallStatus.SUCCEEDED


class Event(_Record):
    run_id: str
    seq: int
    event_type: str
    data: dict[str, Any]
    created_at: datetime
    prev_hash: str
    hash: str


class Approval(_Record):
    id: str
    run_id: str
    step_id: str
    tool_call_id: str
    tool_name: str
    args: dict[str, Any]
    args_hash: str
    risk_reason: str
    status: ApprovalStatus
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    created_at: datetime
    original_args: dict[str, Any] | None = None  # set when approved with changed arguments
    # Signatures under the secret key (store/signing.py); not shown, not exported.
    binding: str | None = Field(default=None, exclude=True, repr=False)
    decision_signature: str | None = Field(default=None, exclude=True, repr=False)

    @property
    def changed(self) -> bool:
        return self.original_args is not None


class WorkerInfo(_Record):
    id: str
    hostname: str
    pid: int
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    running: list[str]


class Notification(_Record):
    id: str
    approval_id: str
    run_id: str
    channel: NotifyChannel
    kind: NotificationKind
    recipient: str | None
    status: NotificationStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    created_at: datetime


class RunDetail(_Record):
    """A run with everything recorded about it, as `run show` prints it."""

    run: Run
    steps: list[Step]
    tool_calls: list[ToolCall]
    events: list[Event]
    approvals: list[Approval]


# --- views for pages: what the dashboard reads, joined and paged in SQL -----------------------

FAILED_CALL_STATUSES = frozenset(
    {
        ToolCallStatus.FAILED,
        ToolCallStatus.UNKNOWN,
        ToolCallStatus.DENIED,
        ToolCallStatus.REJECTED,
        ToolCallStatus.EXPIRED,
    }
)
"""Tool calls that did not do what the agent asked: a run that "completed" with some of
these did not simply succeed, and its row says how many."""


class RunRow(Run):
    """A run in a list of runs: its objective's title, and how many of its tool calls failed
    (FAILED_CALL_STATUSES)."""

    objective_title: str
    failed_calls: int


class RunPage(_Record):
    """One page of runs, newest first; `total` counts every run the filters match."""

    rows: list[RunRow]
    total: int
    limit: int
    offset: int


class RunView(_Record):
    """The head of a run's page."""

    run: Run
    objective_title: str
    failed_calls: int


class TimelineItem(_Record):
    """A step with the tool call it made and the approval it asked for, if any."""

    step: Step
    tool_call: ToolCall | None
    approval: Approval | None


class TimelinePage(_Record):
    """Steps of a run in order; `total` is the run's step count."""

    items: list[TimelineItem]
    total: int
    offset: int
    limit: int


class ApprovalRow(Approval):
    """An approval in a list: the objective, the run's number and the step's thought."""

    objective_title: str
    run_number: int
    thought: str | None


class ApprovalPage(_Record):
    """One page of approvals, pending ones first, then newest first."""

    rows: list[ApprovalRow]
    total: int
    limit: int
    offset: int


class ApprovalView(_Record):
    """Everything an approval's page shows: what is asked, in which run, why, who was told."""

    approval: Approval
    run: Run
    objective_title: str
    thought: str | None
    notifications: list[Notification]


# --- what the runtime hands to the store to write --------------------------------------------


class NewEvent(_Record):
    event_type: str
    data: dict[str, Any] = Field(default_factory=dict)


class NewStep(_Record):
    thought: str | None = None
    tool: str | None = None
    args: dict[str, Any] | None = None
    raw_output: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int | None = None
    usage: dict[str, Any] | None = None


class NewToolCall(_Record):
    tool_name: str
    args: dict[str, Any]
    risk_level: RiskLevel
    status: ToolCallStatus = ToolCallStatus.STARTED


class StepOutcome(_Record):
    """How a step ended, when it is known as the step is written (no side effect in flight)."""

    step_status: StepStatus
    result: Any = None
    tool_call_status: ToolCallStatus | None = None
    tool_error: CleanText | None = None
    duration_ms: int | None = None
    attempts: int = 0


class NewApproval(_Record):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    tool_name: str
    args: dict[str, Any]
    risk_reason: str
    expires_at: datetime


class RunChanges(_Record):
    """What one write does to the run row besides appending events and counting steps.

    `owner` fences the write: it applies only while that worker still holds the run's lease,
    so a worker that lost its lease (paused by the OS, say) cannot write over the new holder.
    """

    owner: str | None = None
    status: RunStatus | None = None
    stop_reason: StopReason | None = None
    summary: CleanText | None = None
    error: CleanText | None = None
    previous_run_id: str | None = None
    add_prompt_tokens: int = 0
    add_completion_tokens: int = 0
    active_ms: int | None = None
    lease_expires_at: datetime | None = None
    release_lease: bool = False


class StepDecision(BaseModel):
    """One step as the LLM must propose it: the seed's JSON format."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    thought: str = Field(description="your reasoning about what to do next")
    tool: str | None = Field(
        default=None, max_length=64, description="the tool to call; null when done"
    )
    args: dict[str, Any] | None = Field(default=None, description="the tool's arguments")
    done: bool = Field(description="true when the objective is achieved")
    summary: str | None = Field(
        default=None, description="when done: what was accomplished and the results"
    )

    @model_validator(mode="after")
    def _consistent(self) -> StepDecision:
        if self.done:
            if self.tool and self.tool.strip():
                raise ValueError(
                    '"done" is true but "tool" is set: choose one, either call the tool with '
                    '"done": false, or finish with "tool": null and a summary'
                )
            if not (self.summary and self.summary.strip()):
                raise ValueError('"summary" is required when "done" is true')
        elif not (self.tool and self.tool.strip()):
            raise ValueError('"tool" is required when "done" is false')
        return self


class LedgerBreak(_Record):
    """The first event of a run whose chain does not verify, and what is wrong with it (a
    run deleted whole is named by its id and its last sealed event)."""

    run_id: str
    seq: int
    problem: str


class SealBreak(_Record):
    """A seal of the ledger (by sequence number) that was altered, forged or deleted."""

    seal: int
    problem: str


class Seal(_Record):
    """A signed seal of the ledger: the heads of the runs whose ledger grew since the
    previous seal (`entries_count` of them, hashing to `entries_digest`), chained to the
    previous seal by its signature."""

    seq: int
    sealed_at: datetime
    entries_count: int
    entries_digest: str
    prev_signature: str
    signature: str
    # Prune checkpoints written before seals, signed by this (the first) seal.
    checkpoints_adopted: int = 0


class LedgerReport(_Record):
    runs_checked: int
    events_checked: int
    breaks: list[LedgerBreak]
    seal_breaks: list[SealBreak] = Field(default_factory=list)
    seals_checked: int = 0
    first_seal_at: datetime | None = None
    last_seal_seq: int | None = None
    last_seal_at: datetime | None = None
    last_seal_age_s: float | None = None
    # What verification cannot rule out, or should be looked at, without failing it.
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.seal_breaks
