"""The ledger covers what each step asked for and got: a finished step's stored thought,
arguments or result edited in the database afterwards is named by `ledger verify`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from agent_core.approvals import decide
from agent_core.models import RunStatus
from agent_core.store.ledger import CALL_HASH, STEP_HASH, STEP_ID, event_hash, tool_args_hash
from agent_core.store.schema import events, runs, steps, tool_calls
from tests.support import (
    KEY,
    agent_settings,
    create_leads,
    make_objective,
    make_orchestrator,
    run_to_end,
    tamper,
)

LEADS = [
    {
        "id": 1,
        "name": "Ada",
        "email": "ada@example.com",
        "followed_up": False,
        "created_at": datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
    }
]


@pytest.fixture
def finished_run(store, llm_server):
    return _a_finished_run(store, llm_server)


def _a_finished_run(store, llm_server):
    """A run of four kinds of step: a read, a change of data (at most once), a call policy
    refuses, and the final answer."""
    create_leads(store, LEADS)
    objective = make_objective(
        store, risk_level="medium", tools_allowed=["read_database", "update_data"]
    )
    llm_server.step("Read the leads.", "read_database", table="app_leads", limit=5)
    llm_server.step(
        "Mark Ada contacted.",
        "update_data",
        table="app_leads",
        id=1,
        data={"followed_up": True},
    )
    llm_server.step("Email her.", "send_email", to="ada@example.com", subject="Hi", body="Hi")
    llm_server.done("Ada is marked contacted.")
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert run.status is RunStatus.COMPLETED
    return run


def _the_step(store, run_id, number):
    return next(step for step in store.list_steps(run_id) if step.step_number == number)


def test_every_step_is_recorded_and_an_untouched_run_verifies(store, finished_run):
    recorded = {
        event.data[STEP_ID]
        for event in store.list_events(finished_run.id)
        if STEP_HASH in event.data
    }
    assert recorded == {step.id for step in store.list_steps(finished_run.id)}
    assert len(recorded) == 4
    assert store.verify_ledger(KEY).ok


def test_a_finished_calls_rewritten_arguments_are_named(store, finished_run, database_url):
    # Someone with write access hides what the call changed: new arguments, their hash
    # recomputed in the row, the step's copy edited too.
    step = _the_step(store, finished_run.id, 2)
    hidden = {"table": "app_leads", "id": 1, "data": {"name": "Ada"}}

    def rewrite(conn: sa.Connection) -> None:
        conn.execute(
            tool_calls.update()
            .where(tool_calls.c.step_id == step.id)
            .values(args=hidden, args_hash=tool_args_hash("update_data", hidden))
        )
        conn.execute(steps.update().where(steps.c.id == step.id).values(args=hidden))

    tamper(database_url, rewrite)
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.run_id == finished_run.id
    assert broken.problem.startswith("step 2 was edited after this event recorded it")
    assert "arguments" in broken.problem
    recorded_at = store.list_events(finished_run.id)[broken.seq - 1]
    assert recorded_at.data[STEP_ID] == step.id


def test_an_edited_result_is_named(store, finished_run, database_url):
    step = _the_step(store, finished_run.id, 1)
    tamper(
        database_url,
        lambda conn: conn.execute(
            steps.update().where(steps.c.id == step.id).values(result={"rows": []})
        ),
    )
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.problem == (
        "step 1 was edited after this event recorded it: its status, result or error no "
        "longer match what the ledger recorded"
    )


def test_an_edited_thought_is_named(store, finished_run, database_url):
    step = _the_step(store, finished_run.id, 3)
    tamper(
        database_url,
        lambda conn: conn.execute(
            steps.update().where(steps.c.id == step.id).values(thought="Nothing to see.")
        ),
    )
    (broken,) = store.verify_ledger(KEY, finished_run.id).breaks
    assert "step 3" in broken.problem
    assert "thought" in broken.problem


def test_a_deleted_step_is_named(store, finished_run, database_url):
    step = _the_step(store, finished_run.id, 2)

    def delete(conn: sa.Connection) -> None:
        conn.execute(tool_calls.delete().where(tool_calls.c.step_id == step.id))
        conn.execute(steps.delete().where(steps.c.id == step.id))

    tamper(database_url, delete)
    (broken,) = store.verify_ledger(KEY).breaks
    assert "its row was deleted" in broken.problem


def test_approved_calls_with_changed_arguments_still_verify(store, llm_server, database_url):
    # The admin changes the arguments before approving: the call then holds the approved
    # ones, which the ledger records with the decision.
    create_leads(store, LEADS)
    objective = make_objective(store, risk_level="low", tools_allowed=["update_data"])
    llm_server.step(
        "Mark Ada lost.",
        "update_data",
        table="app_leads",
        id=1,
        data={"email": "lost@example.com"},
    )
    llm_server.done("Done.")
    settings = agent_settings(agent_approval_flow=True)
    orchestrator = make_orchestrator(store, llm_server.url, settings=settings)
    paused = run_to_end(orchestrator, objective.id)
    assert paused.status is RunStatus.PAUSED
    (approval,) = store.list_approvals()
    changed = {"table": "app_leads", "id": 1, "data": {"followed_up": True}}
    tools = orchestrator.context.tools
    decide(store, settings, approval.id, approve=True, by="admin", args=changed, tools=tools)
    assert store.claim_run(paused.id, owner=orchestrator.owner, lease_s=300) is not None
    assert orchestrator.execute(paused.id).status is RunStatus.COMPLETED
    assert store.verify_ledger(KEY).ok

    def put_back(conn: sa.Connection) -> None:  # the call's arguments made to look proposed
        conn.execute(
            tool_calls.update()
            .where(tool_calls.c.id == approval.tool_call_id)
            .values(args=approval.args, args_hash=approval.args_hash)
        )

    tamper(database_url, put_back)
    (broken,) = store.verify_ledger(KEY).breaks
    assert "tool call's tool or arguments" in broken.problem


def test_a_rejected_call_still_verifies(store, llm_server):
    create_leads(store, LEADS)
    objective = make_objective(store, risk_level="low", tools_allowed=["update_data"])
    llm_server.step("Drop Ada.", "update_data", table="app_leads", id=1, data={"email": "x@y.z"})
    llm_server.done("Left as it was.")
    settings = agent_settings(agent_approval_flow=True)
    orchestrator = make_orchestrator(store, llm_server.url, settings=settings)
    paused = run_to_end(orchestrator, objective.id)
    (approval,) = store.list_approvals()
    decide(store, settings, approval.id, approve=False, by="admin", reason="keep it")
    assert store.claim_run(paused.id, owner=orchestrator.owner, lease_s=300) is not None
    assert orchestrator.execute(paused.id).status is RunStatus.COMPLETED
    assert store.verify_ledger(KEY).ok


def test_renumbered_steps_are_named(store, finished_run, database_url):
    first, second = _the_step(store, finished_run.id, 1), _the_step(store, finished_run.id, 2)

    def swap(conn: sa.Connection) -> None:  # the change of data shown as the first step
        for step_id, number in ((first.id, 99), (second.id, 1), (first.id, 2)):
            conn.execute(steps.update().where(steps.c.id == step_id).values(step_number=number))

    tamper(database_url, swap)
    (broken,) = store.verify_ledger(KEY).breaks
    assert "recorded as step 1 is now numbered 2" in broken.problem


def test_a_step_or_call_added_outside_the_runtime_is_named(store, finished_run, database_url):
    step = _the_step(store, finished_run.id, 2)
    forged = {"table": "app_leads", "id": 1, "data": {"followed_up": False}}

    def add_call(conn: sa.Connection) -> None:
        conn.execute(
            tool_calls.insert().values(
                id=str(uuid.uuid4()),
                run_id=finished_run.id,
                step_id=step.id,
                tool_name="update_data",
                args=forged,
                args_hash=tool_args_hash("update_data", forged),
                risk_level="medium",
                status="succeeded",
                attempts=1,
                created_at=datetime.now(UTC),
            )
        )

    tamper(database_url, add_call)
    (broken,) = store.verify_ledger(KEY).breaks
    assert "step 2 now has 2 tool calls" in broken.problem

    def add_step(conn: sa.Connection) -> None:
        conn.execute(tool_calls.delete().where(tool_calls.c.args == forged))
        conn.execute(
            steps.insert().values(
                id=str(uuid.uuid4()),
                run_id=finished_run.id,
                step_number=0,
                thought="Sent the quote.",
                tool="send_email",
                status="completed",
                prompt_tokens=0,
                completion_tokens=0,
                created_at=datetime.now(UTC),
            )
        )

    tamper(database_url, add_step)
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.problem == (
        "step 0 is in no event of the ledger: it was added outside the runtime"
    )


def test_digests_appended_for_a_finished_step_are_named(store, finished_run, database_url):
    # With the run sealed, someone rewrites a finished call and appends one well-chained
    # event holding the new rows' digests: a finished step is never recorded again.
    store.seal_ledger(KEY)
    step = _the_step(store, finished_run.id, 2)
    hidden = {"table": "app_leads", "id": 1, "data": {"name": "Ada"}}

    def rewrite_and_append(conn: sa.Connection) -> None:
        conn.execute(tool_calls.update().where(tool_calls.c.step_id == step.id).values(args=hidden))
        last = conn.execute(
            sa.select(events)
            .where(events.c.run_id == finished_run.id)
            .order_by(events.c.seq.desc())
        ).first()
        data = {STEP_ID: step.id, CALL_HASH: tool_args_hash("update_data", hidden)}
        moment = datetime.now(UTC)
        conn.execute(
            events.insert().values(
                run_id=finished_run.id,
                seq=last.seq + 1,
                event_type="run_released",
                data=data,
                created_at=moment,
                prev_hash=last.hash,
                hash=event_hash(
                    run_id=finished_run.id,
                    seq=last.seq + 1,
                    event_type="run_released",
                    data=data,
                    created_at=moment,
                    prev_hash=last.hash,
                ),
            )
        )
        conn.execute(
            runs.update().where(runs.c.id == finished_run.id).values(event_seq=last.seq + 1)
        )

    tamper(database_url, rewrite_and_append)
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.problem == (
        "a step that had finished is recorded again here: an event was appended outside the "
        "runtime to change it"
    )


def test_a_call_moved_to_another_run_is_named(store, finished_run, database_url):
    step = _the_step(store, finished_run.id, 2)
    other = store.create_run(make_objective(store).id)
    tamper(
        database_url,
        lambda conn: conn.execute(
            tool_calls.update().where(tool_calls.c.step_id == step.id).values(run_id=other.id)
        ),
    )
    (broken,) = store.verify_ledger(KEY, finished_run.id).breaks
    assert "step 2's tool call now belongs to another run" in broken.problem


def test_values_no_json_holds_are_named_not_a_crash(sqlite_store, llm_server):
    # Only SQLite stores NaN (written by hand: the runtime never does).
    store = sqlite_store
    finished_run = _a_finished_run(store, llm_server)
    step = _the_step(store, finished_run.id, 1)
    with store.engine.begin() as conn:
        conn.execute(
            steps.update()
            .where(steps.c.id == step.id)
            .values(result=sa.text("""'{"rows": NaN}'"""))
        )
    (broken,) = store.verify_ledger(KEY).breaks
    assert "step 1 was edited" in broken.problem


def test_minus_zero_in_arguments_is_no_false_alarm(store, llm_server):
    # PostgreSQL's JSONB keeps -0.0 as 0.0: the digests are taken over what it gives back.
    objective = make_objective(store, risk_level="low", tools_allowed=["read_database"])
    llm_server.step("Read.", "read_database", table="app_leads", filters={"score": -0.0})
    llm_server.done("Done.")
    create_leads(store, LEADS)
    run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert store.verify_ledger(KEY).ok
