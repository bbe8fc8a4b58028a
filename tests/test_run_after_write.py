"""The run a worker's write hands back is the run the database holds: a write on the ledger
head the worker last wrote is not read back, its run is known from the one before it."""

from __future__ import annotations

from datetime import timedelta

from agent_core.models import (
    NewEvent,
    NewStep,
    NewToolCall,
    RunChanges,
    RunStatus,
    StepOutcome,
    StepStatus,
    StopReason,
    ToolCallStatus,
)
from tests.support import KEY, make_objective

STEP = NewStep(
    thought="Count the leads.",
    tool="count_database",
    args={"table": "app_leads"},
    model="test-model",
    prompt_tokens=120,
    completion_tokens=30,
)
CALL = NewToolCall(tool_name="count_database", args={"table": "app_leads"}, risk_level="low")


def _as_held(store, run):
    """The run as the database holds it, beside the one a write returned."""
    assert run == store.get_run(run.id)
    return run


def test_every_write_of_a_worker_returns_the_run_as_stored(store, clock):
    run = store.create_run(make_objective(store).id)
    claimed = _as_held(store, store.claim_run(run.id, owner="worker", lease_s=600))

    def changes(**values):  # as the loop's Session makes them: the lease renewed each time
        return RunChanges(
            owner="worker",
            active_ms=values.pop("active_ms", 1),
            lease_expires_at=clock() + timedelta(seconds=600),
            **values,
        )

    started = _as_held(
        store,
        store.update_run(
            run.id,
            changes(previous_run_id=None, add_prompt_tokens=7),
            [NewEvent(event_type="run_started")],
        ),
    )
    assert started.event_seq == claimed.event_seq + 1
    for number in range(1, 4):
        clock.advance(seconds=1.5)
        written = store.start_step(
            run.id,
            STEP,
            tool_call=CALL,
            outcome=StepOutcome(
                step_status=StepStatus.COMPLETED,
                result={"count": number},
                tool_call_status=ToolCallStatus.SUCCEEDED,
            ),
            run=changes(active_ms=number * 1000),
            new_events=[NewEvent(event_type="step_completed", data={"n": number})],
        )
        step_run = _as_held(store, written.run)
        assert (step_run.steps_count, step_run.tool_calls_count) == (number, number)
        # The worker's lease thread renews the lease between two steps, without an event.
        store.renew_leases(owner="worker", run_ids=[run.id], lease_s=900)
    side_effect = store.start_step(
        run.id, STEP, tool_call=CALL, run=changes(), new_events=[NewEvent(event_type="started")]
    )
    _as_held(store, side_effect.run)
    _as_held(
        store,
        store.finish_step(
            run.id,
            side_effect.step.id,
            StepOutcome(
                step_status=StepStatus.FAILED,
                result={"error": "timed out"},
                tool_call_status=ToolCallStatus.FAILED,
                tool_error="timed out",
            ),
            tool_call_id=side_effect.tool_call.id,
            run=changes(add_completion_tokens=3),
            new_events=[NewEvent(event_type="step_failed")],
        ),
    )
    ended = _as_held(
        store,
        store.update_run(
            run.id,
            changes(status=RunStatus.COMPLETED, stop_reason=StopReason.DONE, summary="Done."),
            [NewEvent(event_type="objective_completed")],
        ),
    )
    assert (ended.status, ended.lease_owner, ended.lease_expires_at) == (
        RunStatus.COMPLETED,
        None,
        None,
    )
    assert ended.total_tokens == 7 + 4 * 150 + 3
    assert store.verify_ledger(KEY).ok


def test_a_write_that_leaves_the_lease_as_renewed_returns_the_renewed_lease(store, clock):
    # A write that does not set the lease cannot know what its renewal made of it: that run
    # is read back.
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="worker", lease_s=60)
    fenced = RunChanges(owner="worker")
    store.start_step(
        run.id, STEP, tool_call=CALL, run=fenced, new_events=[NewEvent(event_type="s")]
    )
    clock.advance(seconds=30)
    store.renew_leases(owner="worker", run_ids=[run.id], lease_s=600)
    renewed = store.get_run(run.id).lease_expires_at
    written = store.start_step(
        run.id, STEP, tool_call=CALL, run=fenced, new_events=[NewEvent(event_type="s")]
    )
    assert written.run.lease_expires_at == renewed
    _as_held(store, written.run)


def test_a_cancel_requested_between_two_steps_reaches_the_worker_s_next_step(
    store, database_url, clock
):
    from agent_core.store import Store

    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="worker", lease_s=600)
    lease = RunChanges(owner="worker", lease_expires_at=clock() + timedelta(seconds=600))
    store.start_step(run.id, STEP, tool_call=CALL, run=lease, new_events=[NewEvent(event_type="s")])
    dashboard = Store.open(database_url, clock=clock)  # the admin's cancel, in its own process
    try:
        dashboard.request_cancel(run.id, by="admin")
    finally:
        dashboard.close()
    after = store.start_step(
        run.id, STEP, tool_call=CALL, run=lease, new_events=[NewEvent(event_type="s")]
    )
    assert after.run.cancel_requested_at is not None
    _as_held(store, after.run)


def test_a_previous_run_named_in_another_form_is_returned_as_stored(store, clock):
    objective = make_objective(store)
    previous = store.create_run(objective.id)
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner="worker", lease_s=600)
    started = store.update_run(
        run.id,
        RunChanges(
            owner="worker",
            lease_expires_at=clock() + timedelta(seconds=600),
            previous_run_id=previous.id.replace("-", "").upper(),
        ),
        [NewEvent(event_type="run_started")],
    )
    assert _as_held(store, started).previous_run_id == previous.id
