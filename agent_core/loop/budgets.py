"""A run's budgets: steps, tool calls, active duration and tokens. Pure functions.

Each budget is the objective's own where it sets one, else the AGENT_* default. They are
checked before every step; reaching one fails the run with its stop reason, never 'done'.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_core.config import Settings
from agent_core.models import Objective, Run, StopReason
from agent_core.render import counted


@dataclass(frozen=True)
class Budget:
    max_steps: int
    max_tool_calls: int
    max_duration_ms: int
    max_tokens: int

    def document(self) -> dict[str, int]:
        """The budget as the ledger records it (the seed's camelCase keys)."""
        return {
            "maxSteps": self.max_steps,
            "maxToolCalls": self.max_tool_calls,
            "maxDurationMs": self.max_duration_ms,
            "maxTokens": self.max_tokens,
        }


def effective_budget(objective: Objective, settings: Settings) -> Budget:
    """The objective's own budget where it sets one, else the AGENT_* defaults (the seed).
    A tool-call budget of 0 is a budget (no tool calls at all), not 'unset'."""
    own = objective.budget
    return Budget(
        max_steps=own.max_steps or settings.agent_max_steps,
        max_tool_calls=own.max_tool_calls
        if own.max_tool_calls is not None
        else settings.agent_max_tool_calls,
        max_duration_ms=own.max_duration_ms or settings.agent_max_duration_ms,
        max_tokens=own.max_tokens or settings.agent_max_tokens_per_run,
    )


def exhausted_budget(budget: Budget, run: Run, active_ms: int) -> tuple[StopReason, str] | None:
    """Which budget, if any, forbids another step, checked in this order: steps, tool calls,
    duration, tokens. Exhaustion is a failure, never 'done'."""
    if run.steps_count >= budget.max_steps:
        return (
            StopReason.BUDGET_STEPS,
            f"step budget exhausted ({counted(budget.max_steps, 'step')})",
        )
    if run.tool_calls_count >= budget.max_tool_calls:
        return (
            StopReason.BUDGET_TOOL_CALLS,
            f"tool-call budget exhausted ({counted(budget.max_tool_calls, 'call')})",
        )
    if active_ms >= budget.max_duration_ms:
        return (
            StopReason.BUDGET_DURATION,
            f"duration budget exhausted ({budget.max_duration_ms:,} ms)",
        )
    if run.total_tokens >= budget.max_tokens:
        return (
            StopReason.BUDGET_TOKENS,
            f"token budget exhausted ({counted(budget.max_tokens, 'token')})",
        )
    return None


def limit_of(budget: Budget, reason: StopReason) -> int:
    """The limit a budget stop reason refers to (KeyError for any other reason)."""
    return {
        StopReason.BUDGET_STEPS: budget.max_steps,
        StopReason.BUDGET_TOOL_CALLS: budget.max_tool_calls,
        StopReason.BUDGET_DURATION: budget.max_duration_ms,
        StopReason.BUDGET_TOKENS: budget.max_tokens,
    }[reason]
