"""Writing a step (step row, tool call row, events, run counters) is all or nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from agent_core.enums import StopReason
from agent_core.errors import LeaseLost
from agent_core.models import (
    NewEvent,
    NewStep,
    NewToolCall,
    RiskLevel,
    RunChanges,
    RunStatus,
    StepOutcome,
    StepStatus,
    ToolCallStatus,
)
from agent_core.store import Store
from agent_core.store.ledger import STEP_HASH, STEP_ID, tool_args_hash
from tests.support import KEY, make_objective

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
# A step's event, without the number of the step (these tests write several steps with it).
EVENTS = [NewEvent(event_type="step_started", data={"tool": "count_database"})]
MOMENT = datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=UTC)


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
    assert store.verify_ledger(KEY).ok


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
    assert store.verify_ledger(KEY).ok


def _refuse_tool_call_inserts(store):
    """A database-level failure after the step's run update, events and step row are
    written: the tool call insert is refused by a trigger."""
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER disk_full BEFORE INSERT ON app_agent_tool_calls "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER disk_full BEFORE INSERT ON app_agent_tool_calls "
                "FOR EACH ROW EXECUTE FUNCTION disk_full()"
            )


def _a_run_of_two_steps(writer, objective_id, previous_run_id):
    """A run claimed, started, two steps with their calls and results, and its end: each
    write by `writer()`. What was stored, without what differs from run to run (ids,
    numbers, the hashes over them, the queued event that names the run's number)."""
    run = writer().create_run(objective_id)
    writer().claim_run(run.id, owner="worker", lease_s=600)
    held = RunChanges(owner="worker")
    writer().update_run(
        run.id,
        RunChanges(owner="worker", previous_run_id=previous_run_id, active_ms=1),
        [NewEvent(event_type="run_started")],
    )
    for number in (1, 2):
        data = {"step_number": number, "seen": {"names": ["Zoë", None, "« 😀 »"], "n": 1.5}}
        started = writer().start_step(
            run.id,
            STEP,
            tool_call=CALL,
            run=held,
            new_events=[NewEvent(event_type="step_started", data=data)],
        )
        writer().finish_step(
            run.id,
            started.step.id,
            StepOutcome(
                step_status=StepStatus.COMPLETED,
                result={"rows": [{"name": "Zoë", "note": None}], "text": "a\nb \u00e9"},
                tool_call_status=ToolCallStatus.SUCCEEDED,
                duration_ms=15,
                attempts=1,
            ),
            tool_call_id=started.tool_call.id,
            run=held,
            new_events=[NewEvent(event_type="step_completed", data={"step_number": number})],
        )
    writer().update_run(
        run.id,
        RunChanges(
            owner="worker",
            status=RunStatus.FAILED,
            stop_reason=StopReason.LLM_ERROR,
            summary="Two leads « followed up ».",
            error="the LLM answered 503 « busy »",
            active_ms=42,
            add_prompt_tokens=7,
        ),
        [NewEvent(event_type="run_failed", data={"summary": "Two leads."})],
    )
    detail = writer().run_detail(run.id)
    return (
        detail.run.model_dump(exclude={"id", "run_number"}),
        [step.model_dump(exclude={"id", "run_id"}) for step in detail.steps],
        [call.model_dump(exclude={"id", "run_id", "step_id"}) for call in detail.tool_calls],
        [(event.seq, event.event_type, _without_ids(event.data)) for event in detail.events[1:]],
    )


def _without_ids(data: dict) -> dict:
    """An event's payload without the step's id and what depends on it (random per run)."""
    return {key: value for key, value in data.items() if key not in (STEP_ID, STEP_HASH)}


def test_steps_written_in_one_trip_are_stored_as_the_usual_way_stores_them(store, database_url):
    # A Store writes a run's later steps and its end in one trip, on the ledger head it
    # left; a new Store at each write knows no head and writes them the usual way. The
    # clock stands still, so that the times of both runs are the same.
    objective = make_objective(store)
    with ExitStack() as opened:

        def new_store():
            fresh = Store.open(database_url, clock=lambda: MOMENT)
            opened.callback(fresh.close)
            return fresh

        previous = store.create_run(objective.id).id
        usual = _a_run_of_two_steps(new_store, objective.id, previous)
        same = new_store()
        one_trip = _a_run_of_two_steps(lambda: same, objective.id, previous)
    assert one_trip == usual
    ended = one_trip[0]
    assert (ended["status"], ended["completed_at"], ended["lease_owner"]) == (
        RunStatus.FAILED,
        MOMENT,
        None,
    )
    assert (ended["previous_run_id"], ended["error"]) == (previous, "the LLM answered 503 « busy »")
    assert store.verify_ledger(KEY).ok


def test_a_failure_in_the_middle_of_a_step_leaves_nothing(store):
    run = store.create_run(make_objective(store).id)
    _refuse_tool_call_inserts(store)
    with pytest.raises(Exception, match="disk full"):
        store.start_step(run.id, STEP, tool_call=CALL, new_events=EVENTS)
    _nothing_written(store, run.id)


def test_a_failure_in_the_middle_of_a_later_step_leaves_nothing_of_it(store):
    # A later step is written on the ledger head the earlier one left (PostgreSQL: in one
    # statement); a failure in it leaves the run as the earlier step left it.
    run = store.create_run(make_objective(store).id)
    store.start_step(run.id, STEP, tool_call=CALL, new_events=EVENTS)
    _refuse_tool_call_inserts(store)
    with pytest.raises(Exception, match="disk full"):
        store.start_step(run.id, STEP, tool_call=CALL, new_events=EVENTS)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER disk_full"
            + ("" if store.dialect == "sqlite" else " ON app_agent_tool_calls")
        )
    detail = store.run_detail(run.id)
    assert (detail.run.steps_count, len(detail.steps), len(detail.tool_calls)) == (1, 1, 1)
    assert [event.event_type for event in detail.events] == ["run_queued", "step_started"]
    assert store.start_step(run.id, STEP, tool_call=CALL, new_events=EVENTS).step.step_number == 2
    assert store.verify_ledger(KEY).ok


def test_a_step_follows_what_another_process_appended_since_the_last_one(
    store, database_url, clock
):
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="worker", lease_s=600)
    fenced = RunChanges(owner="worker")
    store.start_step(run.id, STEP, tool_call=CALL, run=fenced, new_events=EVENTS)
    elsewhere = Store.open(database_url, clock=clock)  # the notifier, in its own process
    try:
        elsewhere.append_events(run.id, [NewEvent(event_type="notification_sent")])
    finally:
        elsewhere.close()
    second = store.start_step(run.id, STEP, tool_call=CALL, run=fenced, new_events=EVENTS)
    assert second.step.step_number == 2
    events = store.list_events(run.id)
    assert [event.event_type for event in events][-3:] == [
        "step_started",
        "notification_sent",
        "step_started",
    ]
    assert [event.seq for event in events] == list(range(events[0].seq, events[-1].seq + 1))
    assert store.verify_ledger(KEY).ok


@pytest.mark.parametrize(
    ("claimed_by", "model"),
    [
        ("this process", "test-model"),
        ("another process", "test-model"),
        # A value its column refuses (PostgreSQL checks it before the lease): still LeaseLost.
        ("another process", "m" * 300),
    ],
)
def test_a_worker_whose_run_was_taken_over_writes_no_further_step(
    store, database_url, clock, claimed_by, model
):
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="first", lease_s=60)
    first = RunChanges(owner="first")
    store.start_step(run.id, STEP, tool_call=CALL, run=first, new_events=EVENTS)
    clock.advance(seconds=120)  # its lease lapsed: another worker takes the run over
    if claimed_by == "this process":
        assert store.claim_run(run.id, owner="second", lease_s=60) is not None
    else:
        elsewhere = Store.open(database_url, clock=clock)
        try:
            assert elsewhere.claim_run(run.id, owner="second", lease_s=60) is not None
        finally:
            elsewhere.close()
    late = STEP.model_copy(update={"model": model})
    with pytest.raises(LeaseLost):
        store.start_step(run.id, late, tool_call=CALL, run=first, new_events=EVENTS)
    detail = store.run_detail(run.id)
    assert (detail.run.lease_owner, detail.run.steps_count, len(detail.steps)) == ("second", 1, 1)
    assert store.verify_ledger(KEY).ok


def test_a_run_change_follows_what_another_process_appended_since_the_claim(
    store, database_url, clock
):
    # The worker's first write after its claim (the run's start) is built on the head the
    # claim left; an event appended by another process in between is chained on, not lost.
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="worker", lease_s=600)
    elsewhere = Store.open(database_url, clock=clock)
    try:
        elsewhere.append_events(run.id, [NewEvent(event_type="notification_sent")])
    finally:
        elsewhere.close()
    started = store.update_run(
        run.id, RunChanges(owner="worker", active_ms=5), [NewEvent(event_type="run_started")]
    )
    assert (started.active_ms, started.event_seq) == (5, 4)
    assert [event.event_type for event in store.list_events(run.id)] == [
        "run_queued",
        "run_claimed",
        "notification_sent",
        "run_started",
    ]
    assert store.verify_ledger(KEY).ok


def test_a_run_change_with_hundreds_of_events_is_written_whole(store):
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="worker", lease_s=600)  # the head is known from here
    many = [NewEvent(event_type="note", data={"n": n}) for n in range(300)]
    changed = store.update_run(run.id, RunChanges(owner="worker"), many)
    assert changed.event_seq == 302
    assert len(store.list_events(run.id)) == 302
    after = store.start_step(run.id, STEP, tool_call=CALL, run=RunChanges(owner="worker"))
    assert (after.run.event_seq, after.step.step_number) == (302, 1)
    assert store.verify_ledger(KEY).ok


def test_a_worker_whose_run_was_taken_over_changes_it_no_more(store, database_url, clock):
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="first", lease_s=60)
    clock.advance(seconds=120)
    elsewhere = Store.open(database_url, clock=clock)
    try:
        assert elsewhere.claim_run(run.id, owner="second", lease_s=60) is not None
    finally:
        elsewhere.close()
    with pytest.raises(LeaseLost):
        store.update_run(
            run.id, RunChanges(owner="first", active_ms=5), [NewEvent(event_type="run_started")]
        )
    after = store.get_run(run.id)
    assert (after.lease_owner, after.active_ms) == ("second", 0)
    assert [event.event_type for event in store.list_events(run.id)][-1] == "run_claimed"
    assert store.verify_ledger(KEY).ok


_WRITE_A_STEP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import sqlalchemy as sa
    from agent_core.models import NewEvent, NewStep, NewToolCall
    from agent_core.store import Store
    store = Store.open(sys.argv[1])
    marker = Path(sys.argv[3])

    def pause_for_kill():  # called by the test's trigger, mid-transaction
        marker.touch()
        time.sleep(60)

    if store.dialect == "sqlite":
        sa.event.listen(
            store.engine,
            "connect",
            lambda dbapi, _: dbapi.create_function("pause_for_kill", 0, pause_for_kill),
        )
        store.engine.dispose()  # connections opened from now on know the function
    for _ in range(int(sys.argv[4])):  # earlier steps, without a tool call: not paused
        store.start_step(sys.argv[2], NewStep(thought="t"), new_events=[NewEvent(event_type="e")])
    store.start_step(
        sys.argv[2],
        NewStep(thought="t", tool="count_database", args={}, prompt_tokens=5),
        tool_call=NewToolCall(tool_name="count_database", args={}, risk_level="low"),
        new_events=[NewEvent(event_type="step_started")],
    )
    """
)


def _pause_tool_call_inserts(store):
    """The step's transaction stops inside its tool call insert, after its run update, its
    events and its step row, so that the test can kill the process right there."""
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER pause BEFORE INSERT ON app_agent_tool_calls "
                "BEGIN SELECT pause_for_kill(); END"
            )
        else:
            # The server notices a vanished client within 100 ms, even mid-query (PG 14+).
            database = conn.exec_driver_sql("SELECT current_database()").scalar()
            conn.exec_driver_sql(
                f'ALTER DATABASE "{database}" SET client_connection_check_interval = 100'
            )
            conn.exec_driver_sql(
                "CREATE FUNCTION pause_for_kill() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER pause BEFORE INSERT ON app_agent_tool_calls "
                "FOR EACH ROW EXECUTE FUNCTION pause_for_kill()"
            )


def _paused_mid_transaction(store, marker):
    if store.dialect == "sqlite":
        return marker.exists()
    # The writer's backend sleeping in the trigger (matching the query's text would also
    # match this very query, and a long statement's text is cut short in pg_stat_activity).
    with store.engine.connect() as conn:
        return bool(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep'"
            ).scalar()
        )


@pytest.mark.parametrize("earlier_steps", [0, 2])
def test_a_process_killed_while_writing_a_step_leaves_nothing_of_it(
    store, database_url, tmp_path, earlier_steps
):
    run = store.create_run(make_objective(store).id)
    _pause_tool_call_inserts(store)
    marker = tmp_path / "paused"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WRITE_A_STEP,
            database_url,
            run.id,
            str(marker),
            str(earlier_steps),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not _paused_mid_transaction(store, marker):
        assert writer.poll() is None, writer.communicate()[1]
        assert time.monotonic() < deadline, "the writer never reached its tool call insert"
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER pause" + ("" if store.dialect == "sqlite" else " ON app_agent_tool_calls")
        )
    if earlier_steps == 0:
        _nothing_written(store, run.id)
    detail = store.run_detail(run.id)
    assert (detail.run.steps_count, len(detail.steps), detail.tool_calls) == (
        earlier_steps,
        earlier_steps,
        [],
    )
    # The run carries on from where it was: the next step follows the earlier ones.
    assert (
        store.start_step(run.id, STEP, tool_call=CALL, new_events=EVENTS).step.step_number
        == earlier_steps + 1
    )
    assert store.verify_ledger(KEY).ok


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


def test_a_step_that_waited_for_another_process_s_append_chains_on_it(pg_database, clock):
    """PostgreSQL: another process appends to the run, and its transaction still holds the
    run when a step of a process that knows nothing of the run's head starts: the step's
    update waits, then chains on the appended event (not on the genesis hash)."""
    store, elsewhere, stepper = (Store.open(pg_database, clock=clock) for _ in range(3))
    try:
        run = store.create_run(make_objective(store).id)
        store.claim_run(run.id, owner="worker", lease_s=600)
        store.start_step(run.id, STEP, run=RunChanges(owner="worker"), new_events=EVENTS)
        with store.engine.begin() as conn:  # the append's transaction pauses in its insert
            conn.exec_driver_sql(
                "CREATE FUNCTION slow_append() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER slow_append BEFORE INSERT ON app_agent_events FOR EACH ROW "
                "WHEN (NEW.event_type = 'notification_sent') EXECUTE FUNCTION slow_append()"
            )
        appending = threading.Thread(
            target=elsewhere.append_events,
            args=(run.id, [NewEvent(event_type="notification_sent")]),
        )
        appending.start()
        deadline = time.monotonic() + 30
        while not _paused_mid_transaction(store, None):
            assert time.monotonic() < deadline, "the append never reached its insert"
            time.sleep(0.02)
        second = stepper.start_step(run.id, STEP, run=RunChanges(owner="worker"), new_events=EVENTS)
        appending.join(timeout=30)
        assert second.step.step_number == 2
        events = store.list_events(run.id)
        assert [event.event_type for event in events][-2:] == ["notification_sent", "step_started"]
        assert events[-1].prev_hash == events[-2].hash
        assert store.verify_ledger(KEY, run.id).ok
    finally:
        for opened in (store, elsewhere, stepper):
            opened.close()


def test_a_runtime_role_that_does_not_own_the_schema_still_writes_its_steps(
    pg_database, pg_admin, clock
):
    # The owner ran `db upgrade`; the runtime connects as a role granted the tables (and
    # exempt from row level security) but not the step function: its steps take the usual
    # path, whole and chained, instead of failing.
    role = f"agent_test_runtime_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS").format(sql.Identifier(role)))
    owner = Store.open(pg_database, clock=clock)
    try:
        with owner.engine.begin() as conn:
            conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            conn.exec_driver_sql(
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'
            )
        as_role = make_url(pg_database).set(username=role, password=None)
        runtime = Store.open(as_role.render_as_string(hide_password=False), clock=clock)
        try:
            run = runtime.create_run(make_objective(runtime).id)
            runtime.claim_run(run.id, owner="worker", lease_s=600)
            held = RunChanges(owner="worker")
            for number in (1, 2, 3):
                started = runtime.start_step(
                    run.id, STEP, tool_call=CALL, run=held, new_events=EVENTS
                )
                assert started.step.step_number == number
            ended = runtime.update_run(
                run.id, RunChanges(owner="worker", status=RunStatus.COMPLETED, summary="ok")
            )
            assert (ended.status, ended.steps_count, ended.lease_owner) == (
                RunStatus.COMPLETED,
                3,
                None,
            )
        finally:
            runtime.close()
        assert owner.verify_ledger(KEY, run.id).ok
        with owner.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
    finally:
        owner.close()
        pg_admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
