"""The conversation rebuilt from stored steps: a pure function of the objective, the run, the
previous run, the steps and the tools on offer. No database, no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from agent_core.loop.prompting import conversation, exchange, first_message, system_prompt
from agent_core.models import Objective, RiskLevel, Run, Step, StepStatus
from agent_core.policy import Outcome, PolicyDecision, offered_tools
from agent_core.tools.registry import Tool

CREATED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
STARTED = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


class TableArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str


def _tool(name, risk, description="does things"):
    return Tool(
        name=name,
        description=description,
        risk=risk,
        side_effects=False,
        args_model=TableArgs,
        handler=lambda args, context: {},
    )


COUNT = _tool("count_database", RiskLevel.LOW, "Count rows.")
DELETE = _tool("delete_data", RiskLevel.HIGH, "Delete rows.")
OFFERED = [
    (COUNT, PolicyDecision(Outcome.ALLOW, "low risk is allowed", RiskLevel.LOW)),
    (DELETE, PolicyDecision(Outcome.NEEDS_APPROVAL, "a human must approve it", RiskLevel.HIGH)),
]


def _objective(**fields):
    return Objective.model_validate(
        {
            "id": "objective-1",
            "title": "Weekly leads",
            "description": "Find last week's leads.",
            "tools_allowed": [],
            "budget": {},
            "risk_level": "medium",
            "schedule": None,
            "timezone": "UTC",
            "enabled": True,
            "last_run_number": 2,
            "created_at": CREATED,
            "updated_at": CREATED,
            **fields,
        }
    )


def _run(number=2, started_at=STARTED, summary=None, status="running"):
    return Run.model_construct(
        id=f"run-{number}",
        objective_id="objective-1",
        run_number=number,
        status=status,
        summary=summary,
        created_at=CREATED,
        started_at=started_at,
    )


def _step(number, status=StepStatus.COMPLETED, tool="count_database", result=None):
    return Step.model_construct(
        id=f"step-{number}",
        run_id="run-2",
        step_number=number,
        thought="t",
        tool=tool,
        args={"table": "app_leads"},
        raw_output=f'{{"step": {number}}}',
        result={"count": number} if result is None else result,
        status=status,
    )


def _build(steps=(), previous=None, offered=OFFERED, max_chars=4000):
    return conversation(
        _objective(), _run(), previous, steps, offered, observation_max_chars=max_chars
    )


def test_the_system_prompt_lists_each_offered_tool_with_risk_and_schema():
    system = _build()[0]
    assert system["role"] == "system"
    assert "- count_database (risk low): Count rows." in system["content"]
    schema = json.dumps(COUNT.args_schema(), sort_keys=True, separators=(",", ":"))
    assert f"args JSON schema: {schema}" in system["content"]


def test_only_tools_that_need_approval_carry_the_approval_note():
    content = system_prompt(OFFERED)
    assert "- delete_data (risk high, needs a human's approval): Delete rows." in content
    assert "count_database (risk low, needs" not in content


def test_with_no_tool_on_offer_the_model_is_told_it_can_only_finish():
    assert "(none: you can only think and then finish with done=true)" in system_prompt([])


def test_the_offered_tools_follow_the_policy():
    objective = _objective(tools_allowed=["count_database", "delete_data"], risk_level="medium")
    offered = offered_tools(
        [COUNT, DELETE, _tool("read_database", RiskLevel.LOW)],
        objective=objective,
        allowed_risks=[RiskLevel.LOW, RiskLevel.MEDIUM],
        approval_flow=True,
    )
    content = system_prompt(offered)
    assert "read_database" not in content  # outside the objective's list
    assert "delete_data (risk high, needs a human's approval)" in content


def test_the_first_message_holds_the_objective_and_the_day_the_run_started():
    first = _build()[1]
    assert first == {
        "role": "user",
        "content": "OBJECTIVE: Weekly leads\n\nDESCRIPTION: Find last week's leads."
        "\n\nTODAY (UTC): 2026-11-03",
    }


def test_a_run_not_started_yet_is_dated_by_its_creation():
    assert "TODAY (UTC): 2026-11-02" in first_message(_objective(), _run(started_at=None), None)


def test_the_previous_runs_summary_is_the_agents_memory():
    previous = _run(number=1, summary="Found 3 leads; emailed none yet.", status="completed")
    first = _build(previous=previous)[1]["content"]
    assert first.endswith(
        "\n\nPREVIOUS RUN:\nRun #1 (completed):\nFound 3 leads; emailed none yet."
    )


def test_a_previous_run_without_summary_adds_nothing():
    previous = _run(number=1, summary=None, status="failed")
    assert "PREVIOUS RUN" not in _build(previous=previous)[1]["content"]
    assert "PREVIOUS RUN" not in _build(previous=None)[1]["content"]


def test_each_finished_step_adds_its_reply_and_its_observation_in_order():
    steps = [
        _step(1),
        _step(2, StepStatus.FAILED, result={"error": "refused"}),
        _step(3),
    ]
    messages = _build(steps)
    assert len(messages) == 2 + 2 * 3
    assert [m["role"] for m in messages[2:]] == ["assistant", "user"] * 3
    assert [m["content"] for m in messages[2::2]] == ['{"step": 1}', '{"step": 2}', '{"step": 3}']
    assert messages[5]["content"].startswith("OBSERVATION of step 2 (count_database: failed)")
    assert messages[2:4] == exchange(steps[0], 4000)


def test_unfinished_steps_and_the_final_answer_are_not_sent():
    steps = [
        _step(1),
        _step(2, StepStatus.EXECUTING),  # a side effect in flight
        _step(3, StepStatus.AWAITING_APPROVAL),  # waiting for an admin
        _step(4, tool=None, result={"summary": "done"}),  # the final answer
    ]
    messages = _build(steps)
    assert len(messages) == 4
    assert "OBSERVATION of step 1" in messages[3]["content"]


def test_a_step_without_stored_reply_is_sent_as_an_empty_reply():
    step = _step(1).model_copy(update={"raw_output": None})
    assert _build([step])[2] == {"role": "assistant", "content": ""}


def test_the_observation_cap_is_applied():
    long = _step(1, result={"text": "x" * 5_000})
    assert "...[truncated:" in _build([long], max_chars=100)[3]["content"]
    assert "...[truncated:" not in _build([long], max_chars=10_000)[3]["content"]


def test_the_same_inputs_give_the_same_messages():
    steps = [_step(1), _step(2)]
    assert _build(steps) == _build(list(steps))
