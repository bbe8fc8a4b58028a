"""Database faults are one sentence, never a traceback: a file that is not a database, a
driver error while connecting, a server lost in the middle of a step (the worker logs one
line and the run recovers through its lease)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from agent_core.errors import StoreUnavailable
from agent_core.models import NewEvent, NewStep, RunChanges, RunStatus
from agent_core.runtime import open_runtime
from agent_core.store import Store
from agent_core.worker import Worker
from tests.peers import TcpProxy
from tests.support import KEY, agent_settings, make_objective

REPO = Path(__file__).resolve().parent.parent


def cli(args, cwd, **env):
    return subprocess.run(
        [sys.executable, "-m", "agent_core", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_file_that_is_not_a_database_is_one_sentence(isolated_environment):
    (isolated_environment / "agent.db").write_text("these are my notes, not a database\n")
    for args in (["run", "list"], ["db", "upgrade"], ["objective", "list", "--json"]):
        result = cli(args, isolated_environment, DATABASE_URL="sqlite:///agent.db")
        assert result.returncode == 1
        assert result.stderr == (
            "error: cannot use the database at sqlite:///agent.db: file is not a database\n"
        )
        if "--json" in args:
            assert json.loads(result.stdout) == {
                "error": "cannot use the database at sqlite:///agent.db: file is not a database",
                "exit_code": 1,
            }


def test_a_sqlite_file_in_a_folder_that_does_not_exist_names_the_folder(isolated_environment):
    """SQLite says only "unable to open database file", and `db upgrade` cannot help."""
    missing = isolated_environment / "no-such-folder"
    for args in (["run", "list"], ["db", "upgrade"]):
        result = cli(args, isolated_environment, DATABASE_URL=f"sqlite:///{missing}/agent.db")
        assert result.returncode == 1
        assert result.stderr == (
            f"error: the folder {missing} named by DATABASE_URL does not exist: create it, or "
            "point DATABASE_URL at a file in an existing folder\n"
        )
    assert not missing.exists()


def test_a_driver_error_while_connecting_is_one_sentence(isolated_environment):
    url = "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=sometimes"
    result = cli(["run", "list"], isolated_environment, DATABASE_URL=url)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: cannot use the database at postgresql+psycopg://")
    assert 'invalid sslmode value: "sometimes"' in result.stderr
    assert "Traceback" not in result.stderr


def test_a_server_lost_during_a_step_is_logged_once_and_the_run_recovers(
    pg_database, llm_server, caplog
):
    """The worker reaches PostgreSQL through a relay that is cut while the LLM answers (and
    back 1.5 s later): the step's write fails, the worker logs one line, and the run's lapsed
    lease lets it finish."""
    url = make_url(pg_database)
    relay = TcpProxy(target_port=url.port or 5432).start()
    store = Store.open(url.set(port=relay.port).render_as_string(hide_password=False))

    def lose_the_server(_body):
        relay.cut()
        return json.dumps({"thought": "done", "done": True, "summary": "all counted"})

    llm_server.reply(lose_the_server)
    llm_server.done("All counted.")
    settings = agent_settings(
        agent_llm_base_url=llm_server.url,
        agent_ai_model="test-model",
        agent_run_lease_s=1,
        agent_worker_poll_s=0.1,
    )
    run = store.create_run(make_objective(store).id)
    worker = Worker(open_runtime(settings, store))

    def wait_for(predicate, what):
        deadline = time.monotonic() + 30
        last_error = None
        while True:
            try:
                if predicate():
                    return
            except StoreUnavailable as exc:  # this test's own pooled connection, cut too
                last_error = exc
            assert time.monotonic() < deadline, f"timed out waiting for {what} ({last_error})"
            time.sleep(0.1)

    try:
        with caplog.at_level(logging.INFO, logger="agent_core.worker"):
            worker.start()

            def stopped() -> list[str]:
                # Not the first ERROR line: the heartbeat may fail on the cut relay before it.
                return [
                    r.getMessage()
                    for r in caplog.records
                    if "stopped: cannot use" in r.getMessage()
                ]

            wait_for(stopped, "the run's stop line")
            assert stopped()[0].startswith(f"run {run.id} stopped: cannot use the database at ")
            relay.restore()
            wait_for(lambda: store.get_run(run.id).status is RunStatus.COMPLETED, "the run")
        lines = [r.getMessage() for r in caplog.records]
        assert all("Traceback" not in line and "\n" not in line for line in lines)
        assert f"run {run.id}: its worker stopped answering; queued again" in lines
        finished = store.get_run(run.id)
        assert finished.summary == "All counted."
        assert store.verify_ledger(KEY, run.id).ok
    finally:
        worker.shutdown()
        store.close()
        relay.stop()


def test_a_pooled_postgresql_connection_dropped_while_idle_is_replaced_unseen(pg_store, pg_admin):
    """The pool pings a connection idle for longer than PING_AFTER_IDLE_S (not one used a
    moment ago, to spare each step a round trip): one the server dropped is replaced."""
    from agent_core.store.engine import PING_AFTER_IDLE_S

    objective = make_objective(pg_store)
    with pg_store.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    pg_admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(PING_AFTER_IDLE_S + 0.2)

    run = pg_store.create_run(objective.id)

    assert pg_store.get_run(run.id).status is RunStatus.QUEUED


def _a_step_then_its_connections_cut(pg_store, pg_admin):
    """A claimed run's first step, then every connection of the store ended by the server;
    the run, and the arguments of its next step."""
    run = pg_store.create_run(make_objective(pg_store).id)
    pg_store.claim_run(run.id, owner="worker", lease_s=600)
    step = {
        "run": RunChanges(owner="worker"),
        "new_events": [NewEvent(event_type="step_started")],
    }
    pg_store.start_step(run.id, NewStep(thought="first"), **step)
    pg_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (pg_store.engine.url.database,),
    )
    return run, step


def test_a_step_after_a_pause_is_written_though_the_server_dropped_its_connection(
    pg_store, pg_admin
):
    """A worker's steps go out on one kept connection; one the server dropped while the run
    waited (longer than PING_AFTER_IDLE_S, on the LLM, say) is replaced unseen."""
    from agent_core.store.engine import PING_AFTER_IDLE_S

    run, step = _a_step_then_its_connections_cut(pg_store, pg_admin)
    time.sleep(PING_AFTER_IDLE_S + 0.2)

    second = pg_store.start_step(run.id, NewStep(thought="second"), **step)

    assert second.step.step_number == 2
    assert pg_store.verify_ledger(KEY, run.id).ok


def test_a_connection_killed_between_two_steps_fails_the_next_in_one_sentence(
    pg_store, pg_admin, caplog
):
    """The server ends the step writer's connection between two steps: the next step fails
    with one sentence and no log line carries a traceback (the dead connection is dropped,
    not reset); the step after it is written on a new connection."""
    run, step = _a_step_then_its_connections_cut(pg_store, pg_admin)
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as failed:
        pg_store.start_step(run.id, NewStep(thought="second"), **step)
    assert str(failed.value).startswith("cannot use the database at ")
    assert "\n" not in str(failed.value)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text
    third = pg_store.start_step(run.id, NewStep(thought="third"), **step)
    assert third.step.step_number == 2
    assert pg_store.verify_ledger(KEY, run.id).ok
