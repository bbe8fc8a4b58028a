"""Runs with known numbers for the analytics tests, written through the Store's own methods
(steps, tool calls, approvals, ledger events, run counters), as the agent loop writes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent_core import events as ledger_events
from agent_core.models import (
    NewStep,
    NewToolCall,
    RiskLevel,
    Run,
    RunChanges,
    RunStatus,
    StepOutcome,
    StepStatus,
    StopReason,
    ToolCallStatus,
)
from agent_core.store import StepStarted, Store
from tests.support import EMAIL, pause_on_email

OWNER = "test-worker"
SINCE = datetime(2026, 11, 2, tzinfo=UTC)
UNTIL = datetime(2026, 11, 5, tzinfo=UTC)
ARGS = {"table": "app_leads"}


@dataclass(frozen=True)
class Answer:
    """One LLM answer: a step (with its tool call, unless `tool` is None: the final answer)."""

    model: str
    prompt: int
    completion: int
    latency_ms: int
    tool: str | None = None
    call: ToolCallStatus = ToolCallStatus.SUCCEEDED
    fallback_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invalid:
    """An invalid reply (a step_error event); its tokens count for the run."""

    model: str
    prompt: int
    completion: int
    latency_ms: int


@dataclass
class Recorder:
    store: Store
    clock: object  # tests.support.ManualClock
    runs: list[Run] = field(default_factory=list)

    def at(self, moment: datetime) -> None:
        self.clock.current = moment  # type: ignore[attr-defined]

    def run(
        self,
        objective_id: str,
        *,
        answers: tuple[Answer | Invalid, ...] = (),
        status: RunStatus | None = RunStatus.COMPLETED,
        stop_reason: StopReason | None = StopReason.DONE,
        active_ms: int = 0,
    ) -> Run:
        """A run that gives these answers, then ends with `status` (None: left running)."""
        run = self.store.create_run(objective_id)
        self.store.claim_run(run.id, owner=OWNER, lease_s=3600)
        for answer in answers:
            if isinstance(answer, Invalid):
                self._invalid(run.id, answer)
            else:
                self._step(run.id, answer)
        if status is not None:
            run = self.store.update_run(
                run.id,
                RunChanges(
                    owner=OWNER,
                    status=status,
                    stop_reason=stop_reason,
                    error=None if status is RunStatus.COMPLETED else "it stopped",
                    active_ms=active_ms,
                ),
            )
        else:
            run = self.store.update_run(run.id, RunChanges(owner=OWNER, active_ms=active_ms))
        self.runs.append(run)
        return run

    def _step(self, run_id: str, answer: Answer) -> None:
        facts = ledger_events.llm_facts(
            model=answer.model,
            prompt_tokens=answer.prompt,
            completion_tokens=answer.completion,
            latency_ms=answer.latency_ms,
            fallback_from=list(answer.fallback_from),
        )
        step = NewStep(
            thought="next",
            tool=answer.tool,
            args=ARGS if answer.tool else None,
            model=answer.model,
            prompt_tokens=answer.prompt,
            completion_tokens=answer.completion,
            latency_ms=answer.latency_ms,
        )
        number = self.store.get_run(run_id).steps_count + 1
        if answer.tool is None:
            self.store.start_step(
                run_id,
                step,
                outcome=StepOutcome(step_status=StepStatus.COMPLETED, result={"summary": "ok"}),
                new_events=[
                    ledger_events.step_completed(
                        step_number=number, tool=None, done=True, llm=facts
                    )
                ],
            )
            return
        succeeded = answer.call is ToolCallStatus.SUCCEEDED
        new_events = [
            ledger_events.step_completed(
                step_number=number, tool=answer.tool, success=succeeded, llm=facts
            )
        ]
        if answer.call is ToolCallStatus.DENIED:
            new_events.insert(
                0,
                ledger_events.tool_denied(
                    step_number=number, tool=answer.tool, reason="not allowed"
                ),
            )
        self.store.start_step(
            run_id,
            step,
            tool_call=NewToolCall(tool_name=answer.tool, args=ARGS, risk_level=RiskLevel.LOW),
            outcome=StepOutcome(
                step_status=StepStatus.COMPLETED if succeeded else StepStatus.FAILED,
                result={"n": 1},
                tool_call_status=answer.call,
                duration_ms=answer.latency_ms,
            ),
            new_events=new_events,
        )

    def _invalid(self, run_id: str, reply: Invalid) -> None:
        facts = ledger_events.llm_facts(
            model=reply.model,
            prompt_tokens=reply.prompt,
            completion_tokens=reply.completion,
            latency_ms=reply.latency_ms,
        )
        self.store.update_run(
            run_id,
            RunChanges(
                owner=OWNER,
                add_prompt_tokens=reply.prompt,
                add_completion_tokens=reply.completion,
            ),
            [ledger_events.step_error(attempt=1, error="not JSON", reply="hm", llm=facts)],
        )

    def paused(
        self, objective_id: str, *, model: str = "model-a", expires_in_h: float = 24
    ) -> StepStarted:
        """A run paused on send_email, waiting for its approval (the step, call, approval)."""
        run = self.store.create_run(objective_id)
        self.store.claim_run(run.id, owner=OWNER, lease_s=3600)
        written = pause_on_email(
            self.store,
            run.id,
            owner=OWNER,
            step=NewStep(
                thought="email her",
                tool="send_email",
                args=EMAIL,
                model=model,
                prompt_tokens=100,
                completion_tokens=10,
                latency_ms=100,
            ),
            expires_in=timedelta(hours=expires_in_h),
        )
        self.runs.append(written.run)
        return written
