"""A run's budgets: the objective's own or the AGENT_* defaults, and which one stops the
run first. Pure: no database, no server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_core.config import Settings
from agent_core.loop.budgets import Budget, effective_budget, exhausted_budget, limit_of
from agent_core.models import Objective, Run, StopReason

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _settings():
    """Built inside a test: the autouse fixture has cleared the environment by then."""
    return Settings(
        agent_max_steps=20,
        agent_max_tool_calls=50,
        agent_max_duration_ms=300_000,
        agent_max_tokens_per_run=200_000,
    )


def _objective(**budget):
    return Objective.model_validate(
        {
            "id": "objective-1",
            "title": "Weekly leads",
            "description": "Find last week's leads.",
            "tools_allowed": [],
            "budget": budget,
            "risk_level": "medium",
            "schedule": None,
            "timezone": "UTC",
            "enabled": True,
            "last_run_number": 1,
            "created_at": NOW,
            "updated_at": NOW,
        }
    )


def _run(steps=0, tool_calls=0, prompt_tokens=0, completion_tokens=0):
    return Run.model_construct(
        id="run-1",
        steps_count=steps,
        tool_calls_count=tool_calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


BUDGET = Budget(max_steps=5, max_tool_calls=3, max_duration_ms=1_000, max_tokens=500)


def test_without_its_own_budget_an_objective_gets_the_settings():
    assert effective_budget(_objective(), _settings()) == Budget(
        max_steps=20, max_tool_calls=50, max_duration_ms=300_000, max_tokens=200_000
    )


@pytest.mark.parametrize(
    ("override", "field", "value"),
    [
        ({"maxSteps": 3}, "max_steps", 3),
        ({"maxToolCalls": 7}, "max_tool_calls", 7),
        ({"maxDurationMs": 60_000}, "max_duration_ms", 60_000),
        ({"maxTokens": 1_000}, "max_tokens", 1_000),
    ],
)
def test_each_budget_of_the_objective_overrides_its_default_alone(override, field, value):
    budget = effective_budget(_objective(**override), _settings())
    defaults = effective_budget(_objective(), _settings())
    assert getattr(budget, field) == value
    others = {name: getattr(defaults, name) for name in Budget.__dataclass_fields__}
    assert budget == Budget(**{**others, field: value})


def test_a_tool_call_budget_of_zero_is_a_budget_not_a_default():
    assert effective_budget(_objective(maxToolCalls=0), _settings()).max_tool_calls == 0
    assert exhausted_budget(
        Budget(max_steps=5, max_tool_calls=0, max_duration_ms=1_000, max_tokens=500), _run(), 0
    ) == (StopReason.BUDGET_TOOL_CALLS, "tool-call budget exhausted (0 calls)")


def test_the_ledger_document_uses_the_seeds_keys():
    assert BUDGET.document() == {
        "maxSteps": 5,
        "maxToolCalls": 3,
        "maxDurationMs": 1_000,
        "maxTokens": 500,
    }


def test_under_every_budget_another_step_is_allowed():
    assert exhausted_budget(BUDGET, _run(4, 2, 200, 299), 999) is None


@pytest.mark.parametrize(
    ("run", "active_ms", "expected"),
    [
        (_run(steps=5), 0, (StopReason.BUDGET_STEPS, "step budget exhausted (5 steps)")),
        (
            _run(tool_calls=3),
            0,
            (StopReason.BUDGET_TOOL_CALLS, "tool-call budget exhausted (3 calls)"),
        ),
        (_run(), 1_000, (StopReason.BUDGET_DURATION, "duration budget exhausted (1,000 ms)")),
        (
            _run(prompt_tokens=450, completion_tokens=50),
            0,
            (StopReason.BUDGET_TOKENS, "token budget exhausted (500 tokens)"),
        ),
    ],
)
def test_each_budget_is_reached_at_its_limit(run, active_ms, expected):
    assert exhausted_budget(BUDGET, run, active_ms) == expected


def test_tokens_count_prompt_and_completion_together():
    assert exhausted_budget(BUDGET, _run(prompt_tokens=499), 0) is None
    assert exhausted_budget(BUDGET, _run(prompt_tokens=499, completion_tokens=1), 0) is not None


def test_budgets_are_checked_steps_then_tool_calls_then_duration_then_tokens():
    everything = _run(steps=5, tool_calls=3, prompt_tokens=500)
    assert exhausted_budget(BUDGET, everything, 1_000)[0] is StopReason.BUDGET_STEPS
    no_steps = _run(tool_calls=3, prompt_tokens=500)
    assert exhausted_budget(BUDGET, no_steps, 1_000)[0] is StopReason.BUDGET_TOOL_CALLS
    tokens_only = _run(prompt_tokens=500)
    assert exhausted_budget(BUDGET, tokens_only, 1_000)[0] is StopReason.BUDGET_DURATION
    assert exhausted_budget(BUDGET, tokens_only, 999)[0] is StopReason.BUDGET_TOKENS


def test_the_limit_of_each_budget_stop_reason():
    assert [
        limit_of(BUDGET, reason)
        for reason in (
            StopReason.BUDGET_STEPS,
            StopReason.BUDGET_TOOL_CALLS,
            StopReason.BUDGET_DURATION,
            StopReason.BUDGET_TOKENS,
        )
    ] == [5, 3, 1_000, 500]
    with pytest.raises(KeyError):
        limit_of(BUDGET, StopReason.DONE)
