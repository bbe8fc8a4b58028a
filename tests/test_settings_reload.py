"""A running worker takes on changed settings without a restart (at each heartbeat, or at
once on SIGHUP); a setting that needs a restart is logged as such, once."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent_core.config import load_settings, reload_settings
from agent_core.models import RunStatus
from agent_core.runtime import open_runtime
from agent_core.worker import Worker
from tests.support import make_objective

REPO = Path(__file__).resolve().parent.parent


def test_a_changed_setting_reaches_the_next_run_and_a_restart_one_is_named_once(
    store, database_url, llm_server, monkeypatch, caplog
):
    for name, value in {
        "DATABASE_URL": database_url,
        "AGENT_ENABLED": "true",
        "AGENT_LLM_BASE_URL": llm_server.url,
        "AGENT_AI_MODEL": "model-a",
        "AGENT_MAX_STEPS": "20",
    }.items():
        monkeypatch.setenv(name, value)
    worker = Worker(open_runtime(load_settings(), store), load_settings=load_settings)
    owner = worker.id

    monkeypatch.setenv("AGENT_AI_MODEL", "model-b")
    monkeypatch.setenv("AGENT_MAX_STEPS", "1")
    monkeypatch.setenv("AGENT_WORKER_CONCURRENCY", "9")
    with caplog.at_level(logging.INFO, logger="agent_core.worker"):
        worker.heartbeat()
        worker.heartbeat()
    messages = [record.getMessage() for record in caplog.records]
    assert "settings reloaded: AGENT_MAX_STEPS, AGENT_AI_MODEL" in messages
    assert messages.count("AGENT_WORKER_CONCURRENCY changed: restart the worker to apply it") == 1
    assert (worker.settings.agent_max_steps, worker.settings.agent_worker_concurrency) == (1, 4)
    assert worker.id == worker.runtime.owner == owner  # same identity: its leases hold

    run = store.create_run(make_objective(store).id)
    llm_server.step("Count.", "count_database", table="app_leads")
    worker.run_once()
    assert llm_server.requests[0]["model"] == "model-b"
    ended = store.get_run(run.id)
    assert (ended.status, ended.stop_reason) == (RunStatus.FAILED, "budget_steps")


def test_a_bad_new_value_keeps_the_old_settings_and_says_why(
    store, database_url, monkeypatch, caplog
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AGENT_MAX_STEPS", "20")
    worker = Worker(open_runtime(load_settings(), store), load_settings=load_settings)
    monkeypatch.setenv("AGENT_MAX_STEPS", "lots")
    with caplog.at_level(logging.ERROR, logger="agent_core.worker"):
        worker.heartbeat()
    assert worker.settings.agent_max_steps == 20
    assert any(
        "settings not reloaded: AGENT_MAX_STEPS: Input should be a valid integer" in r.getMessage()
        for r in caplog.records
    )


def test_a_settings_file_broken_while_running_keeps_the_worker_and_its_leases(
    store, database_url, monkeypatch, caplog, isolated_environment: Path
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    worker = Worker(open_runtime(load_settings(), store), load_settings=load_settings)
    (isolated_environment / ".streamlit").mkdir()
    (isolated_environment / ".streamlit" / "secrets.toml").write_text("AGENT_MAX_STEPS = \n")
    with caplog.at_level(logging.INFO, logger="agent_core.worker"):
        worker.heartbeat()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" (")[0] for r in errors] == [
        "settings not reloaded: .streamlit/secrets.toml is not valid TOML"
    ]
    assert all(r.exc_info is None for r in errors)  # one line, no traceback
    assert worker.settings.agent_max_steps == 20


@pytest.mark.parametrize("processes", [1, 2])
def test_sighup_makes_the_worker_process_reread_dot_env_at_once(
    database_url, llm_server, isolated_environment, processes
):
    """With several processes, the supervisor passes SIGHUP on to each of them."""
    env_file = isolated_environment / ".env"
    env_file.write_text("AGENT_ENABLED=true\nAGENT_MAX_STEPS=20\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_url,
        "AGENT_LLM_BASE_URL": llm_server.url,
        "AGENT_WORKER_HEARTBEAT_S": "3600",  # only SIGHUP can make it re-read in time
        "AGENT_RUN_LEASE_S": "10800",
        "AGENT_WORKER_PROCESSES": str(processes),
    }
    worker = subprocess.Popen(
        [sys.executable, str(REPO / "scheduler.py")],
        cwd=isolated_environment,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        while sum("started" in line for line in seen) < processes:
            seen.append(worker.stderr.readline())
        env_file.write_text("AGENT_ENABLED=true\nAGENT_MAX_STEPS=3\n")
        worker.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        reloaded = []
        while time.monotonic() < deadline and len(reloaded) < processes:
            line = worker.stderr.readline()
            seen.append(line)
            if "settings reloaded" in line:
                reloaded.append(line)
        assert len(reloaded) == processes, seen
        assert all("settings reloaded: AGENT_MAX_STEPS" in line for line in reloaded)
    finally:
        worker.send_signal(signal.SIGTERM)
        rest = worker.communicate(timeout=30)[1]
    assert worker.returncode == 0, rest
    assert "Traceback" not in "".join(seen) + rest


def test_a_settings_file_caught_half_written_is_read_once_it_is_whole(isolated_environment):
    """An editor that empties .env, then writes it: a reload in between waits for the whole
    file instead of putting every setting it holds back to its default."""
    env_file = isolated_environment / ".env"
    env_file.write_text("")  # emptied a moment ago: the rest is on its way
    whole = "AGENT_ENABLED=true\nAGENT_MAX_STEPS=3\n"
    writer = threading.Timer(0.2, env_file.write_text, args=(whole,))
    writer.start()
    try:
        settings = reload_settings()
    finally:
        writer.join()
    assert (settings.agent_enabled, settings.agent_max_steps) == (True, 3)
    assert load_settings().agent_max_steps == 3


def test_a_settings_file_dated_ahead_of_the_clock_is_read_without_waiting(isolated_environment):
    """A .env copied from a machine whose clock is ahead, or a clock set back: a reload
    takes it at once, as it would every heartbeat."""
    env_file = isolated_environment / ".env"
    env_file.write_text("AGENT_MAX_STEPS=4\n")
    ahead = time.time() + 3600
    os.utime(env_file, (ahead, ahead))

    waits: list[float] = []
    settings = reload_settings(sleep=waits.append)

    assert settings.agent_max_steps == 4
    assert waits == []  # it used to wait 3 s at every reload


def test_a_fresh_secrets_file_is_waited_for_beside_a_dotenv_dated_ahead(isolated_environment):
    """Each file's age counts alone: a .env from the future does not make a secrets file
    written a moment ago look settled."""
    env_file = isolated_environment / ".env"
    env_file.write_text("AGENT_MAX_STEPS=4\n")
    ahead = time.time() + 3600
    os.utime(env_file, (ahead, ahead))
    (isolated_environment / ".streamlit").mkdir(exist_ok=True)
    (isolated_environment / ".streamlit" / "secrets.toml").write_text("AGENT_MAX_TOOL_CALLS = 7\n")

    waits: list[float] = []
    settings = reload_settings(sleep=lambda seconds: (waits.append(seconds), time.sleep(seconds)))

    assert (settings.agent_max_steps, settings.agent_max_tool_calls) == (4, 7)
    assert waits  # the secrets file was left to settle first
