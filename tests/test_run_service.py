"""Starting, cancelling and executing runs through the services the CLI and dashboard share."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent_core.errors import Conflict
from agent_core.models import RunStatus, StopReason
from agent_core.runs import cancel_run, execute_here, live_workers, start_run
from agent_core.runtime import open_runtime
from tests.support import agent_settings, make_objective


def test_a_run_is_queued_only_when_the_runtime_and_the_objective_are_enabled(store):
    objective = make_objective(store)
    run = start_run(store, agent_settings(), objective.id)
    assert (run.status, run.run_number) == (RunStatus.QUEUED, 1)
    with pytest.raises(Conflict, match=r"AGENT_ENABLED=false\): set AGENT_ENABLED=true"):
        start_run(store, agent_settings(agent_enabled=False), objective.id)
    disabled = make_objective(store, enabled=False)
    with pytest.raises(Conflict, match="is disabled: enable it before starting runs"):
        start_run(store, agent_settings(), disabled.id)


def test_cancelling_records_who_and_ends_a_queued_run(store):
    run = start_run(store, agent_settings(), make_objective(store).id)
    cancelled = cancel_run(store, run.id, by="ana")
    assert (cancelled.status, cancelled.stop_reason) == (RunStatus.CANCELLED, StopReason.CANCELLED)
    assert store.list_events(run.id)[-1].data["by"] == "ana"
    with pytest.raises(Conflict, match="has already ended"):
        cancel_run(store, run.id, by="ana")


def test_executing_here_says_why_a_run_cannot_be_taken(store, llm_server):
    settings = agent_settings(agent_llm_base_url=llm_server.url, agent_ai_model="test-model")
    runtime = open_runtime(settings, store)
    run = start_run(store, settings, make_objective(store).id)
    llm_server.done("Nothing to do.")
    finished = execute_here(runtime, run.id)
    assert (finished.status, finished.summary) == (RunStatus.COMPLETED, "Nothing to do.")
    with pytest.raises(Conflict, match=r"cannot be executed now: it has ended \(completed\)"):
        execute_here(runtime, run.id)


def test_live_workers_are_those_with_a_recent_heartbeat(store, clock):
    settings = agent_settings(agent_worker_heartbeat_s=2)
    store.record_worker(
        worker_id="w1", hostname="h", pid=1, concurrency=4, running=[], stopped=False
    )
    assert [worker.id for worker in live_workers(store, settings)] == ["w1"]
    assert settings.worker_alive_window == timedelta(seconds=11)
    clock.advance(seconds=12)
    assert live_workers(store, settings) == []
