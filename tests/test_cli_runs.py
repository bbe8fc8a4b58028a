"""Starting, resuming and cancelling runs, and listing tools, from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent_core.store import Store
from tests.support import SECRET_KEY, create_leads, make_objective, run_cli

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def agent_env(database_url, llm_server, monkeypatch):
    env = {
        "DATABASE_URL": database_url,
        "AGENT_ENABLED": "true",
        "AGENT_LLM_BASE_URL": llm_server.url,
        "AGENT_AI_MODEL": "test-model",
        "AGENT_DATA_TABLES": "app_leads",
        "AGENT_SECRET_KEY": SECRET_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_an_objective_created_with_the_cli_runs_to_completion(agent_env, llm_server, store):
    create_leads(store, [])
    run_module = [sys.executable, "-m", "agent_core"]
    options = {
        "cwd": REPO,
        "env": {**os.environ, "PYTHONPATH": str(REPO), **agent_env},
        "capture_output": True,
        "text": True,
        "timeout": 120,
    }
    created = subprocess.run(
        [
            *run_module,
            "objective",
            "create",
            "--json",
            "--title",
            "Leads",
            "--description",
            "Count the leads",
            "--tools",
            "count_database",
        ],
        **options,
    )
    assert created.returncode == 0, created.stderr
    objective_id = json.loads(created.stdout)["id"]
    llm_server.step("Count them.", "count_database", table="app_leads")
    llm_server.done("There are 0 leads.")

    started = subprocess.run(
        [*run_module, "run", "start", objective_id, "--wait", "--json"], **options
    )
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    assert (run["status"], run["stop_reason"], run["summary"]) == (
        "completed",
        "done",
        "There are 0 leads.",
    )

    shown = subprocess.run([*run_module, "run", "show", run["id"]], **options)
    assert "Step 1: count rows of app_leads (count_database) — succeeded." in shown.stdout
    assert '      result: {"count": 0' in shown.stdout
    assert "Objective reached: There are 0 leads." in shown.stdout
    verified = subprocess.run([*run_module, "ledger", "verify"], **options)
    assert verified.returncode == 0
    assert "ledger OK" in verified.stdout


def test_run_start_without_wait_only_queues(agent_env, store):
    objective = make_objective(store)
    result = run_cli(["run", "start", objective.id, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "queued"


def test_run_start_without_a_live_worker_says_how_to_start_one(agent_env, store):
    result = run_cli(["run", "start", make_objective(store).id])
    assert result.exit_code == 0, result.stderr
    assert "Run #1 waiting for a worker." in result.stdout
    assert "no worker is running: start one with `.venv/bin/python scheduler.py`" in result.stdout


def test_a_failed_run_exits_1_with_its_reason(agent_env, llm_server, store):
    objective = make_objective(store)
    llm_server.fail(500)
    result = run_cli(["run", "start", objective.id, "--wait"])
    assert result.exit_code == 1
    assert "failed (llm_error)" in result.stdout
    assert "error: no model answered: test-model:" in result.stdout


def test_a_completed_run_whose_call_failed_says_so_as_run_show_does(agent_env, llm_server, store):
    objective = make_objective(store, tools_allowed=["read_database"])
    llm_server.step("Read the leads.", "read_database", table="app_leads", limit=0)
    llm_server.done("Could not read the leads.")

    result = run_cli(["run", "start", objective.id, "--wait"])

    assert result.exit_code == 0, result.stderr
    assert "Run #1 completed, but 1 tool call did not succeed." in result.stdout
    run_id = result.stdout.split()[1].rstrip(":")
    assert (
        "Run #1 completed, but 1 tool call did not succeed."
        in run_cli(["run", "show", run_id]).stdout
    )


def test_run_resume_without_wait_says_who_resumes_it(agent_env, store):
    run = store.create_run(make_objective(store).id)
    result = run_cli(["run", "resume", run.id])
    assert result.exit_code == 0, result.stderr
    assert "no worker is running: start one with `.venv/bin/python scheduler.py`" in result.stdout


def test_agent_enabled_false_refuses_to_start(agent_env, monkeypatch, store):
    objective = make_objective(store)
    monkeypatch.setenv("AGENT_ENABLED", "false")
    result = run_cli(["run", "start", objective.id])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: the agent runtime is disabled (AGENT_ENABLED=false): set AGENT_ENABLED=true "
        "to start runs\n"
    )
    assert store.list_runs() == []


def test_a_disabled_objective_refuses_to_start(agent_env, store):
    objective = make_objective(store, enabled=False)
    result = run_cli(["run", "start", objective.id])
    assert result.exit_code == 2
    assert "is disabled" in result.stderr


def test_cancel_a_queued_run_and_refuse_to_cancel_it_twice(agent_env, store):
    objective = make_objective(store)
    run = store.create_run(objective.id)
    cancelled = run_cli(["run", "cancel", run.id, "--json"])
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    again = run_cli(["run", "cancel", run.id])
    assert again.exit_code == 2
    assert f"run {run.id} has already ended (cancelled)" in again.stderr
    resumed = run_cli(["run", "resume", run.id, "--wait"])
    assert resumed.exit_code == 2
    assert "it has ended (cancelled)" in resumed.stderr


def test_cancelling_a_running_run_is_a_request(agent_env, database_url):
    store = Store.open(database_url)  # the wall clock, as the CLI's own store uses
    objective = make_objective(store)
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner="somewhere", lease_s=60)
    store.close()
    result = run_cli(["run", "cancel", run.id, "--json"])
    document = json.loads(result.stdout)
    assert document["status"] == "running"
    assert document["cancel_requested_at"] is not None
    resumed = run_cli(["run", "resume", run.id, "--wait"])
    assert resumed.exit_code == 2
    assert "it is running on somewhere" in resumed.stderr


def test_tools_list_shows_risk_side_effects_and_schemas(monkeypatch):
    monkeypatch.setenv("AGENT_DATA_TABLES", "app_leads")
    result = run_cli(["tools", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    tools = {tool["name"]: tool for tool in json.loads(result.stdout)["tools"]}
    assert set(tools) >= {
        "read_database",
        "count_database",
        "create_data",
        "update_data",
        "delete_data",
        "analyze_leads",
    }
    assert (tools["delete_data"]["risk"], tools["delete_data"]["side_effects"]) == ("high", True)
    assert (tools["read_database"]["risk"], tools["read_database"]["side_effects"]) == (
        "low",
        False,
    )
    assert tools["read_database"]["args_schema"]["required"] == ["table"]
    text = run_cli(["tools", "list"])
    assert "delete_data" in text.stdout
    assert "Tables: app_leads." in text.stdout


def test_tools_list_says_which_tools_cannot_run_as_configured_and_what_to_set(monkeypatch):
    monkeypatch.setenv("AGENT_DATA_TABLES", "app_leads")
    monkeypatch.setenv("WIX_API_KEY", "IST.wix-key")

    listed = run_cli(["tools", "list", "--json"])
    text = run_cli(["tools", "list"]).stdout.splitlines()

    problems = {tool["name"]: tool["problem"] for tool in json.loads(listed.stdout)["tools"]}
    email = "email is not configured: set SMTP_HOST (and SMTP_FROM)"
    assert problems["send_email"] == email
    assert problems["wix_create_coupon"] == "Wix is not configured: set WIX_SITE_ID"
    assert problems["read_database"] is None
    assert f"  send_email: {email}" in text[text.index("not ready as configured:") :]
    ready = {line.split()[0]: line.split()[5] for line in text[1 : text.index("")]}
    assert (ready["send_email"], ready["read_database"]) == ("no", "yes")


def test_starting_an_unknown_objective_is_not_found(agent_env):
    result = run_cli(["run", "start", "00000000-0000-4000-8000-000000000000"])
    assert result.exit_code == 2
    assert "no objective has id" in result.stderr


def test_store_is_closed_after_each_command(agent_env, database_url):
    # A SQLite database stays usable by another process after the CLI exits.
    run_cli(["objective", "list"])
    other = Store.open(database_url)
    assert other.list_objectives() == []
    other.close()


def test_run_show_prints_the_models_escape_sequences_inert(agent_env, llm_server, store):
    """A thought or summary with terminal escapes (clear screen, retitle the window) is shown
    as text: the admin's terminal never obeys what the model wrote."""
    create_leads(store, [])
    objective = make_objective(store)
    llm_server.step("\x1b[2J\x1b]0;pwned\x07Counting.", "count_database", table="app_leads")
    llm_server.done("Done \u202eevil")
    started = run_cli(["run", "start", objective.id, "--wait", "--json"])
    assert started.exit_code == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]

    shown = run_cli(["run", "show", run_id])

    assert shown.exit_code == 0, shown.stderr
    assert "\x1b" not in shown.stdout
    assert "\x07" not in shown.stdout
    assert "\u202e" not in shown.stdout
    assert "\\x1b[2J\\x1b]0;pwned\\x07Counting." in shown.stdout
