"""A run resumes in another process exactly where it stopped: the conversation is rebuilt
from the ledger, message for message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent_core.models import RunStatus, StepStatus, ToolCallStatus
from tests.support import KEY, create_leads, make_objective

REPO = Path(__file__).resolve().parent.parent


def _cli(args, env, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "agent_core", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_a_killed_run_resumes_in_a_new_process_with_the_same_messages(
    store, database_url, llm_server
):
    create_leads(store, [])
    objective = make_objective(store, tools_allowed=["count_database", "read_database"])
    env = {
        "DATABASE_URL": database_url,
        "AGENT_ENABLED": "true",
        "AGENT_LLM_BASE_URL": llm_server.url,
        "AGENT_AI_MODEL": "test-model",
        "AGENT_DATA_TABLES": "app_leads",
        "AGENT_RUN_LEASE_S": "1",
    }
    llm_server.step("Count the leads.", "count_database", table="app_leads")
    llm_server.step("Read them.", "read_database", table="app_leads")
    llm_server.hang(60)  # the third question is never answered: the process dies waiting

    first = _cli(["run", "start", objective.id, "--wait", "--json"], env)
    _wait_for(lambda: len(llm_server.requests) == 3)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    expected = llm_server.requests[2]["messages"]

    (run,) = store.list_runs()
    assert run.status is RunStatus.RUNNING  # abandoned: its lease lapses after 1 s
    time.sleep(1.2)
    llm_server.done("There are no leads.")
    second = _cli(["run", "resume", run.id, "--wait", "--json"], env)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err

    assert llm_server.requests[3]["messages"] == expected
    resumed = json.loads(out)
    assert resumed["status"] == "completed"
    assert resumed["attempts"] == 2
    detail = store.run_detail(run.id)
    assert [s.status for s in detail.steps] == [StepStatus.COMPLETED] * 3
    assert [c.status for c in detail.tool_calls] == [ToolCallStatus.SUCCEEDED] * 2
    claims = [e for e in detail.events if e.event_type == "run_claimed"]
    assert claims[1].data["from_status"] == "running"
    assert store.verify_ledger(KEY).ok


def test_the_rebuilt_conversation_equals_the_one_held_in_memory(store, llm_server):
    """In one process: what the loop sent for step 3 equals what `conversation` rebuilds."""
    from tests.support import make_orchestrator

    create_leads(store, [])
    objective = make_objective(store)
    llm_server.reply("not json")  # a repair turn: sent once, never kept in the conversation
    llm_server.step("Count.", "count_database", table="app_leads")
    llm_server.step("Unknown tool.", "teleport", to="mars")
    llm_server.done("Nothing to do.")
    orchestrator = make_orchestrator(store, llm_server.url)
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner=orchestrator.owner, lease_s=60)
    ended = orchestrator.execute(run.id)
    assert ended.status is RunStatus.COMPLETED
    rebuilt = orchestrator.conversation(ended, store.get_objective(objective.id))
    assert rebuilt == llm_server.requests[-1]["messages"]
    assert "unknown tool 'teleport'" in rebuilt[-1]["content"]
