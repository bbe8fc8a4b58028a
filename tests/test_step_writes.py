"""Writing a step (step row, tool call row, events, run counters) is all or nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from agent_core.models import (
    NewEvent,
    NewStep,
    NewToolCall,
    RiskLevel,
    StepOutcome,
    StepStatus,
    ToolCallStatus,
)
from agent_core.store.ledger import tool_args_hash
from tests.support import make_objective

REPO = Path(__file__).resolve().parent.parent

STEP = NewStep(
    thought="Count last week's leads first.",
    tool="count_database",
    args={"table": "app_leads"},
    raw_output='{"thought": "...", "tool": "count_database"}',
    model="Qwen/Qwen2.5-72B-Instruct",
    prompt_tokens=120,
    completion_tokens=30,
    latency_ms=850,
)
CALL = NewToolCall(tool_name="count_database", args={"table": "app_leads"}, risk_level="low")
EVENTS = [NewEvent(event_type="step_started", data={"step_number": 1, "tool": "count_database"})]


def _nothing_written(store, run_id):
    detail = store.run_detail(run_id)
    assert detail.steps == []
    assert detail.tool_calls == []
    assert [event.event_type for event in detail.events] == ["run_queued"]
    assert (detail.run.steps_count, detail.run.tool_calls_count, detail.run.total_tokens) == (
        0,
        0,
        0,
    )
    assert store.verify_ledger().ok


def test_a_step_is_written_with_its_call_events_and_counters(store):
    run = store.create_run(make_objective(store).id)
    started = store.start_step(run.id, STEP, tool_call=CALL, new_events=EVENTS)
    assert started.step.step_number == 1
    assert started.tool_call.status is ToolCallStatus.STARTED
    assert started.tool_call.args_hash == tool_args_hash("count_database", {"table": "app_leads"})
    store.finish_step(
        run.id,
        started.step.id,
        StepOutcome(
            step_status=StepStatus.COMPLETED,
            result={"count": 12},
            tool_call_status=ToolCallStatus.SUCCEEDED,
            duration_ms=15,
            attempts=1,
        ),
        tool_call_id=started.tool_call.id,
        new_events=[NewEvent(event_type="step_completed", data={"step_number": 1})],
    )
    detail = store.run_detail(run.id)
    assert (detail.run.steps_count, detail.run.tool_calls_count, detail.run.total_tokens) == (
        1,
        1,
        150,
    )
    (step,) = detail.steps
    assert (step.status, step.result, step.model) == (
        StepStatus.COMPLETED,
        {"count": 12},
        STEP.model,
    )
    (call,) = detail.tool_calls
    assert call.success
    assert call.result == {"count": 12}
    assert [event.event_type for event in detail.events] == [
        "run_queued",
        "step_started",
        "step_completed",
    ]
    assert store.verify_ledger().ok


def test_a_failure_in_the_middle_of_a_step_leaves_nothing(store):
    run = store.create_run(make_objective(store).id)

    def fail_on_events(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO APP_AGENT_EVENTS"):
            raise RuntimeError("disk full")

    sa.event.listen(store.engine, "before_cursor_execute", fail_on_events)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            store.start_step(run.id, STEP, tool_call=CALL, new_events=EVENTS)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", fail_on_events)
    _nothing_written(store, run.id)


_CRASH_BEFORE_COMMIT = textwrap.dedent(
    """
    import os, sys
    import sqlalchemy as sa
    from agent_core.models import NewEvent, NewStep, NewToolCall
    from agent_core.store import Store
    store = Store.open(sys.argv[1])
    # The process is killed the instant the step's transaction asks to commit.
    sa.event.listen(store.engine, "commit", lambda conn: os._exit(137))
    store.start_step(
        sys.argv[2],
        NewStep(thought="t", tool="count_database", args={}, prompt_tokens=5),
        tool_call=NewToolCall(tool_name="count_database", args={}, risk_level="low"),
        new_events=[NewEvent(event_type="step_started")],
    )
    """
)


def test_a_process_killed_while_writing_a_step_leaves_nothing(store, database_url):
    run = store.create_run(make_objective(store).id)
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH_BEFORE_COMMIT, database_url, run.id],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == 137, crashed.stderr
    _nothing_written(store, run.id)
    # The run carries on from where it was: the next step is step 1.
    assert store.start_step(run.id, STEP, tool_call=CALL).step.step_number == 1


def test_steps_without_a_tool_are_counted_but_not_as_calls(store):
    run = store.create_run(make_objective(store).id)
    store.start_step(run.id, NewStep(thought="thinking"), new_events=[])
    second = store.start_step(
        run.id,
        STEP,
        tool_call=NewToolCall(
            tool_name="send_email",
            args={"to": "a@example.com"},
            risk_level=RiskLevel.HIGH,
            status=ToolCallStatus.DENIED,
        ),
    )
    assert second.step.step_number == 2
    assert (second.run.steps_count, second.run.tool_calls_count) == (2, 1)
    assert second.tool_call.status is ToolCallStatus.DENIED
