"""A secret that a server quotes back in its error (an LLM server's "invalid credentials:
Bearer hf_...", a CRM quoting the key it was sent) is hidden before anything stores or shows
it: not in the run's error, the ledger (which cannot be scrubbed later), the observation sent
to the model, nor what the CLI prints."""

from __future__ import annotations

import json

from agent_core.models import RunStatus, StopReason, ToolCallStatus
from agent_core.runtime import open_runtime
from agent_core.tools import ToolRegistry
from tests.support import (
    agent_settings,
    crm_tool,
    make_objective,
    make_orchestrator,
    run_cli,
    run_to_end,
)

HF_TOKEN = "hf_SUPERSECRETTOKEN123"
WIX_KEY = "wix-s3cret-api-key-0042"


def everything_recorded(store, run_id, database_url, monkeypatch) -> str:
    """What the database holds of the run, and what the CLI shows of it."""
    detail = store.run_detail(run_id)
    recorded = json.dumps([event.data for event in store.list_events(run_id)])
    recorded += json.dumps([call.error for call in detail.tool_calls])
    recorded += json.dumps([step.result for step in detail.steps])
    recorded += str(store.get_run(run_id).error)
    monkeypatch.setenv("DATABASE_URL", database_url)
    for command in (["run", "show", run_id], ["--json", "run", "show", run_id]):
        shown = run_cli(command)
        assert shown.exit_code == 0, shown.stderr
        recorded += shown.stdout
    return recorded


def test_an_llm_server_quoting_the_token_it_was_sent_fails_the_run_without_it(
    store, llm_server, database_url, monkeypatch
):
    llm_server.fail(401, echo_credentials=True)
    settings = agent_settings(
        agent_llm_base_url=llm_server.url, agent_ai_model="test-model", hf_token=HF_TOKEN
    )
    orchestrator = open_runtime(settings, store).orchestrator()

    run = run_to_end(orchestrator, make_objective(store).id)

    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.LLM_ERROR)
    assert "invalid credentials: Bearer ***" in run.error
    recorded = everything_recorded(store, run.id, database_url, monkeypatch)
    assert HF_TOKEN not in recorded
    assert "***" in recorded


def _crm_quoting_the_key(_args, _context):
    raise PermissionError(f"the CRM refused the key {WIX_KEY}: it has expired")


def test_a_tool_error_quoting_a_secret_setting_is_recorded_and_observed_without_it(
    store, llm_server, database_url, monkeypatch
):
    objective = make_objective(store, tools_allowed=["read_crm"])
    llm_server.step("Read the CRM.", "read_crm")
    llm_server.done("The CRM could not be read.")
    settings = agent_settings(wix_api_key=WIX_KEY)
    orchestrator = make_orchestrator(
        store,
        llm_server.url,
        settings=settings,
        tools=ToolRegistry([crm_tool(_crm_quoting_the_key)]),
    )

    run = run_to_end(orchestrator, objective.id)

    assert run.status is RunStatus.COMPLETED
    (call,) = store.run_detail(run.id).tool_calls
    assert call.status is ToolCallStatus.FAILED
    assert "the CRM refused the key ***: it has expired" in call.error
    assert WIX_KEY not in json.dumps(llm_server.requests)  # the model was told without it
    assert WIX_KEY not in everything_recorded(store, run.id, database_url, monkeypatch)


def _error_naming_an_admin(_args, _context):
    raise PermissionError("an admin must pass this CRM's check first")


def test_a_secret_no_server_is_sent_or_a_short_one_is_not_hidden_in_ordinary_words(
    store, llm_server
):
    """The dashboard's password is sent to no server, and a secret under 8 characters would
    be found in ordinary words: hiding either would garble the text, and show where it is."""
    tool = crm_tool(_error_naming_an_admin)
    objective = make_objective(store, tools_allowed=["read_crm"])
    llm_server.step("Read the CRM.", "read_crm")
    llm_server.done("The CRM could not be read.")
    settings = agent_settings(agent_admin_password="admin", smtp_password="pass")
    orchestrator = make_orchestrator(
        store, llm_server.url, settings=settings, tools=ToolRegistry([tool])
    )

    run = run_to_end(orchestrator, objective.id)

    (call,) = store.run_detail(run.id).tool_calls
    assert (
        call.error == "read_crm failed: PermissionError: an admin must pass this CRM's check first"
    )
