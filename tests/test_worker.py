"""The worker process: runs everything queued, scheduled or resumed, exactly once, survives
a killed worker without repeating side effects, and shuts down gracefully."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agent_core.approvals import decide
from agent_core.models import RunStatus, RunTrigger, StopReason, ToolCallStatus
from agent_core.runtime import Runtime
from agent_core.store import Store
from agent_core.tools import ToolRegistry
from agent_core.worker import RunThreads, Worker
from tests.support import KEY, SECRET_KEY, agent_settings, make_objective, run_cli

REPO = Path(__file__).resolve().parent.parent


def _assistant_turns(body):
    return sum(1 for message in body["messages"] if message["role"] == "assistant")


def _done_after(steps):
    """An LLM that takes `steps` count_database steps, then says done."""

    def respond(body):
        if _assistant_turns(body) < steps:
            return json.dumps(
                {
                    "thought": "count",
                    "tool": "count_database",
                    "args": {"table": "app_leads"},
                    "done": False,
                }
            )
        return json.dumps({"thought": "done", "done": True, "summary": "counted"})

    return respond


def _worker_env(database_url, llm_server, **extra):
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_url,
        "AGENT_ENABLED": "true",
        "AGENT_LLM_BASE_URL": llm_server.url,
        "AGENT_AI_MODEL": "test-model",
        "AGENT_DATA_TABLES": "app_leads",
        "AGENT_WORKER_POLL_S": "0.1",
        "AGENT_WORKER_HEARTBEAT_S": "0.3",
        "AGENT_RUN_LEASE_S": "1",
        "AGENT_WORKER_SHUTDOWN_S": "2",
        "AGENT_SECRET_KEY": SECRET_KEY,  # `up` gives its worker the key
        **{name: str(value) for name, value in extra.items()},
    }


def _start_worker(env, *args):
    return subprocess.Popen(
        [sys.executable, "scheduler.py", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _once(env):
    """`python scheduler.py --once --json`: execute what is due, then exit."""
    return subprocess.run(
        [sys.executable, "scheduler.py", "--once", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _stop(process, sig=signal.SIGTERM):
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


@pytest.fixture
def live_store(database_url):
    """The store on the wall clock, as the worker processes use it."""
    from tests.support import create_leads

    opened = Store.open(database_url)
    create_leads(opened, [])
    yield opened
    opened.close()


def test_two_workers_run_hundreds_of_runs_each_exactly_once(live_store, database_url, llm_server):
    store = live_store
    llm_server.responder = _done_after(1)
    objective = make_objective(store, tools_allowed=["count_database"])
    runs = [store.create_run(objective.id) for _ in range(300)]
    # A lease of a few seconds: this test is about exactly-once, not about lapsed leases,
    # and a loaded machine can delay a heartbeat past a 1 s lease.
    env = _worker_env(database_url, llm_server, AGENT_WORKER_CONCURRENCY=8, AGENT_RUN_LEASE_S=5)
    workers = [_start_worker(env), _start_worker(env)]
    try:
        _wait_until(
            lambda: all(r.status.is_final for r in store.list_runs(limit=1000)),
            what="every run to end",
        )
    finally:
        logs = [_stop(worker) for worker in workers]
    ended = store.list_runs(limit=1000)
    assert len(ended) == 300
    assert {run.status for run in ended} == {RunStatus.COMPLETED}
    owners = {}
    for run in runs:
        claims = [e for e in store.list_events(run.id) if e.event_type == "run_claimed"]
        assert len(claims) == 1, run.id
        owners[run.id] = claims[0].data["owner"]
    assert len(set(owners.values())) == 2  # both workers took part
    assert len(llm_server.requests) == 600  # two LLM calls per run, never repeated
    assert store.verify_ledger(KEY).ok
    assert all("started" in err and "completed" in err for _, err in logs)


def test_a_killed_worker_loses_no_run_and_repeats_no_side_effect(
    live_store, database_url, llm_server, mail_server, notify_settings
):
    store = live_store
    objectives = [
        make_objective(store, title=f"lead{n}", risk_level="high", tools_allowed=["send_email"])
        for n in range(12)
    ]

    def respond(body):
        if _assistant_turns(body) == 0:
            title = body["messages"][1]["content"].split("\n")[0].removeprefix("OBJECTIVE: ")
            return json.dumps(
                {
                    "thought": "email",
                    "tool": "send_email",
                    "done": False,
                    "args": {
                        "to": f"{title}@example.com",
                        "subject": "Hi",
                        "body": "Following up.",
                    },
                }
            )
        return json.dumps({"thought": "done", "done": True, "summary": "emailed"})

    llm_server.responder = respond
    llm_server.responder_delay_s = 0.3
    for objective in objectives:
        store.create_run(objective.id)
    mail = {name.upper(): value for name, value in notify_settings.items()}
    env = _worker_env(
        database_url,
        llm_server,
        AGENT_WORKER_CONCURRENCY=4,
        AGENT_ALLOWED_RISK_LEVELS="low,medium,high",
        **mail,
    )
    first = _start_worker(env)
    _wait_until(lambda: len(mail_server.received) >= 3, what="the first mails")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = _start_worker(env)
    try:
        _wait_until(
            lambda: all(r.status.is_final for r in store.list_runs(limit=100)),
            what="every run to end",
        )
    finally:
        _stop(second)
    assert {run.status for run in store.list_runs()} == {RunStatus.COMPLETED}
    delivered = [mail.recipients[0] for mail in mail_server.received]
    assert len(delivered) == len(set(delivered)), "a mail was sent twice"
    for objective in objectives:
        (run,) = store.list_runs(objective_id=objective.id)
        (call,) = store.run_detail(run.id).tool_calls
        address = f"{objective.title}@example.com"
        if call.status is ToolCallStatus.SUCCEEDED:
            assert delivered.count(address) == 1
        else:  # in flight when the worker died: told, never repeated
            assert call.status is ToolCallStatus.UNKNOWN
            assert delivered.count(address) <= 1
    assert store.verify_ledger(KEY).ok


def test_sigterm_gives_runs_back_and_exits_within_the_shutdown_time(
    live_store, database_url, llm_server
):
    store = live_store
    llm_server.responder = _done_after(3)
    llm_server.responder_delay_s = 1.0
    objective = make_objective(store)
    for _ in range(3):
        store.create_run(objective.id)
    worker = _start_worker(_worker_env(database_url, llm_server, AGENT_WORKER_CONCURRENCY=3))
    _wait_until(lambda: len(store.list_runs(status=RunStatus.RUNNING)) == 3, what="3 running")
    started = time.monotonic()
    _, err = _stop(worker, signal.SIGTERM)
    assert time.monotonic() - started < 2 + 3  # AGENT_WORKER_SHUTDOWN_S plus start-up slack
    assert worker.returncode == 0, err
    assert {run.status for run in store.list_runs()} == {RunStatus.QUEUED}
    for run in store.list_runs():
        assert "run_released" in [e.event_type for e in store.list_events(run.id)]
    llm_server.responder_delay_s = 0
    finisher = _start_worker(_worker_env(database_url, llm_server), "--once")
    _, err = finisher.communicate(timeout=60)
    assert finisher.returncode == 0, err
    assert {run.status for run in store.list_runs()} == {RunStatus.COMPLETED}


def _in_process_worker(store, load_settings=None, **settings_values):
    settings = agent_settings(**settings_values)
    runtime = Runtime(
        settings=settings,
        store=store,
        tools=ToolRegistry(),
        llm=None,
        llm_problem="no LLM is configured",
    )
    return Worker(runtime, load_settings=load_settings)


def test_a_heartbeat_under_way_when_the_worker_stops_does_not_write_it_back_alive(store):
    """The scheduler is shut down without waiting for a heartbeat in flight (it may be
    waiting for .env to settle): that heartbeat, ending after the stop was recorded, used to
    record the worker alive again, listed by `worker status` until its heartbeat aged."""
    in_heartbeat, finish = threading.Event(), threading.Event()

    def slow_settings():
        in_heartbeat.set()
        finish.wait(10)
        return agent_settings()

    worker = _in_process_worker(store, load_settings=slow_settings)
    beating = threading.Thread(target=worker.heartbeat)
    beating.start()
    assert in_heartbeat.wait(10)

    worker.shutdown()
    finish.set()
    beating.join(10)

    assert store.list_workers(alive_within=timedelta(minutes=5)) == []


def test_a_cron_slot_fired_by_two_workers_gives_one_run(store, database_url, clock):
    objective = make_objective(store, schedule="*/5 * * * *", timezone="Europe/Paris")
    other_store = Store.open(database_url, clock=clock)
    workers = [_in_process_worker(store), _in_process_worker(other_store)]
    clock.advance(minutes=11)
    barrier = threading.Barrier(2)
    fired: list[list[object]] = []

    def fire(worker):
        barrier.wait()
        fired.append(worker.fire_schedules())

    threads = [threading.Thread(target=fire, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other_store.close()
    assert sorted(len(batch) for batch in fired) == [0, 1]
    (run,) = store.list_runs(objective_id=objective.id)
    assert run.trigger is RunTrigger.SCHEDULE
    assert run.schedule_slot.minute % 5 == 0
    assert workers[0].fire_schedules() == []  # the same slot never fires twice


def test_schedule_edits_are_picked_up_without_restart_and_busy_slots_are_skipped(store, clock):
    objective = make_objective(store)
    worker = _in_process_worker(store)
    clock.advance(minutes=3)
    assert worker.fire_schedules() == []
    updated = store.update_objective(objective.id, _spec(objective, schedule="* * * * *"))
    assert updated.schedule == "* * * * *"
    clock.advance(minutes=1)
    (first,) = worker.fire_schedules()
    assert first.status is RunStatus.QUEUED
    clock.advance(minutes=1)
    (second,) = worker.fire_schedules()  # the first is still queued: this slot is skipped
    assert (second.status, second.stop_reason) == (
        RunStatus.SKIPPED,
        StopReason.PREVIOUS_RUN_ACTIVE,
    )
    store.update_objective(objective.id, _spec(objective, schedule="* * * * *", enabled=False))
    clock.advance(minutes=1)
    assert worker.fire_schedules() == []


def _spec(objective, **changes):
    from agent_core.models import ObjectiveSpec

    fields = objective.model_dump(include=set(ObjectiveSpec.model_fields))
    return ObjectiveSpec.model_validate({**fields, **changes})


def test_a_paused_run_is_not_claimed_until_decided(
    live_store, database_url, llm_server, mail_server, notify_settings
):
    store = live_store
    objective = make_objective(store, risk_level="high", tools_allowed=["send_email"])
    llm_server.step("Email.", "send_email", to="lead@example.com", subject="Hi", body="Hello")
    store.create_run(objective.id)
    mail = {name.upper(): value for name, value in notify_settings.items()}
    env = _worker_env(database_url, llm_server, **mail)
    once = _once(env)
    assert once.returncode == 0, once.stderr
    (run,) = store.list_runs()
    assert run.status is RunStatus.PAUSED
    again = _once(env)
    assert json.loads(again.stdout)["executed"] == 0
    assert store.get_run(run.id).status is RunStatus.PAUSED
    (approval,) = store.list_approvals()
    decide(store, agent_settings(), approval.id, approve=True, by="alice")
    llm_server.done("Emailed.")
    third = _once(env)
    assert json.loads(third.stdout)["executed"] == 1
    assert store.get_run(run.id).status is RunStatus.COMPLETED
    assert [m.recipients for m in mail_server.received][-1] == ["lead@example.com"]


def test_a_run_whose_worker_keeps_dying_fails_as_worker_lost(store, clock):
    objective = make_objective(store)
    run = store.create_run(objective.id)
    worker = _in_process_worker(store)
    for attempt in range(1, 4):
        assert store.claim_run(run.id, owner=f"doomed-{attempt}", lease_s=60) is not None
        clock.advance(seconds=61)  # the worker died: its lease lapses
        worker.recover()
        expected = RunStatus.QUEUED if attempt < 3 else RunStatus.FAILED
        assert store.get_run(run.id).status is expected
    ended = store.get_run(run.id)
    assert ended.stop_reason is StopReason.WORKER_LOST
    types = [e.event_type for e in store.list_events(run.id)]
    assert types.count("run_requeued") == 2


def test_worker_status_lists_live_workers_and_their_runs(
    live_store, database_url, llm_server, monkeypatch
):
    store = live_store
    llm_server.responder = _done_after(2)
    llm_server.responder_delay_s = 1.0
    objective = make_objective(store)
    run = store.create_run(objective.id)
    worker = _start_worker(_worker_env(database_url, llm_server))
    try:
        _wait_until(lambda: store.get_run(run.id).status is RunStatus.RUNNING, what="running")
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("AGENT_WORKER_HEARTBEAT_S", "0.3")
        monkeypatch.setenv("AGENT_RUN_LEASE_S", "1")
        _wait_until(lambda: run.id in run_cli(["worker", "status"]).stdout, what="status")
        status = json.loads(run_cli(["worker", "status", "--json"]).stdout)
        assert len(status) == 1
        assert status[0]["running"] == [run.id]
    finally:
        _stop(worker)
    assert json.loads(run_cli(["worker", "status", "--json"]).stdout) == []


def test_scheduler_once_runs_what_is_queued_from_the_cli(live_store, database_url, llm_server):
    llm_server.responder = _done_after(1)
    objective = make_objective(live_store)
    for _ in range(3):
        live_store.create_run(objective.id)
    result = _once(_worker_env(database_url, llm_server))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["executed"] == 3
    assert result.stderr.count(" started") >= 3
    assert {r.status for r in live_store.list_runs()} == {RunStatus.COMPLETED}


def test_one_worker_command_can_run_several_processes(live_store, database_url, llm_server):
    llm_server.responder = _done_after(1)
    llm_server.responder_delay_s = 0.2  # long enough that both processes take runs
    objective = make_objective(live_store)
    for _ in range(20):
        live_store.create_run(objective.id)
    supervisor = _start_worker(
        _worker_env(database_url, llm_server, AGENT_WORKER_CONCURRENCY=4), "--processes", "2"
    )
    try:
        _wait_until(
            lambda: all(r.status.is_final for r in live_store.list_runs(limit=50)),
            what="every run to end",
        )
        _wait_until(
            lambda: len(live_store.list_workers(alive_within=timedelta(seconds=5))) == 2,
            what="two live worker processes",
        )
        owners = {
            next(
                e.data["owner"]
                for e in live_store.list_events(run.id)
                if e.event_type == "run_claimed"
            )
            for run in live_store.list_runs(limit=50)
        }
    finally:
        _, err = _stop(supervisor)
    assert supervisor.returncode == 0, err
    assert len(owners) == 2
    assert {r.status for r in live_store.list_runs(limit=50)} == {RunStatus.COMPLETED}
    assert live_store.list_workers(alive_within=timedelta(seconds=5)) == []


def test_run_threads_live_on_from_run_to_run_and_grow_only_when_all_are_busy():
    """A thread keeps its LLM client between runs, so runs one after another share one
    thread, and runs at once get one thread each."""
    seen: list[str] = []
    release = threading.Event()
    done = threading.Semaphore(0)

    def execute(run):
        seen.append(threading.current_thread().name)
        if run == "wait":
            release.wait(10)
        done.release()

    threads = RunThreads(execute, then=lambda: None, name="run")
    for _ in range(3):  # one after another
        threads.submit("quick")
        assert done.acquire(timeout=10)
        time.sleep(0.2)  # the thread is idle again
    assert len(set(seen)) == 1
    seen.clear()
    for _ in range(3):  # all at once
        threads.submit("wait")
    time.sleep(0.3)
    release.set()
    for _ in range(3):
        assert done.acquire(timeout=10)
    assert len(set(seen)) == 3
    threads.stop()


def test_a_stop_signal_arriving_while_the_worker_waits_stops_it(store):
    """Ctrl-C or SIGTERM lands while the main thread is inside the wait on the worker's
    stopping event, holding that event's lock: the handler must not need it (it used to,
    and the process hung there for good)."""
    worker = _in_process_worker(store)
    handled = threading.Event()

    def handler() -> None:  # what the signal handler runs, on the thread holding the lock
        with worker._stopping._cond:
            worker.request_stop()
        handled.set()

    thread = threading.Thread(target=handler, daemon=True)
    thread.start()
    assert handled.wait(5), "the stop request waited for the lock its own thread holds"
    waiting = threading.Thread(target=worker.wait, daemon=True)
    waiting.start()
    waiting.join(timeout=5)
    assert not waiting.is_alive(), "the worker did not stop after the request"
    assert worker._stopping.is_set()


@pytest.mark.parametrize("after_s", [0.2, 0.6, 1.5])
def test_ctrl_c_stops_the_worker_even_while_it_starts(sqlite_database, llm_server, after_s):
    """Ctrl-C is how an admin stops a worker in a terminal (and `make run` stops its
    worker): whenever it lands, starting or running, it is a stop, not an error."""
    worker = _start_worker(_worker_env(sqlite_database, llm_server), "--processes", "1")
    time.sleep(after_s)
    out, err = _stop(worker, signal.SIGINT)
    assert worker.returncode == 0, err
    assert "stopped" in out.splitlines()[-1]
    assert "error" not in out + err
    assert "Traceback" not in out + err
