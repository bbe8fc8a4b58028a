"""The agent loop end to end against a real OpenAI-compatible server: plan, act, observe,
decide, with every step in the ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from agent_core.models import RunStatus, StepStatus, StopReason, ToolCallStatus
from tests.support import KEY, create_leads, make_objective, make_orchestrator, run_to_end

NOW = datetime.now(UTC)


def _leads(store):
    create_leads(
        store,
        [
            {
                "id": 1,
                "name": "Ada",
                "email": "ada@example.com",
                "score": 80,
                "followed_up": False,
                "created_at": NOW - timedelta(days=2),
            },
            {
                "id": 2,
                "name": "Bob",
                "email": None,
                "score": 40,
                "followed_up": False,
                "created_at": NOW - timedelta(days=3),
            },
            {
                "id": 3,
                "name": "Cy",
                "email": "cy@example.com",
                "score": 60,
                "followed_up": True,
                "created_at": NOW - timedelta(days=20),
            },
        ],
    )


def test_a_run_reads_data_and_completes_with_every_step_in_the_ledger(store, llm_server):
    _leads(store)
    objective = make_objective(store, tools_allowed=["count_database", "read_database"])
    llm_server.step(
        "Count leads not followed up.",
        "count_database",
        table="app_leads",
        filters={"followed_up": False},
    )
    llm_server.step(
        "Read them.",
        "read_database",
        table="app_leads",
        filters={"followed_up": False},
        columns=["name", "email"],
        order_by="name",
    )
    llm_server.done("2 leads need a follow-up: Ada and Bob.")

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert run.status is RunStatus.COMPLETED
    assert run.stop_reason is StopReason.DONE
    assert run.summary == "2 leads need a follow-up: Ada and Bob."
    detail = store.run_detail(run.id)
    assert [step.tool for step in detail.steps] == ["count_database", "read_database", None]
    assert detail.steps[0].result == {"count": 2}
    assert detail.steps[1].result["rows"] == [
        {"name": "Ada", "email": "ada@example.com"},
        {"name": "Bob", "email": None},
    ]
    assert all(step.model == "test-model" and step.prompt_tokens > 0 for step in detail.steps)
    assert all(step.latency_ms is not None for step in detail.steps)
    assert [call.status for call in detail.tool_calls] == [ToolCallStatus.SUCCEEDED] * 2
    completed = [event for event in detail.events if event.event_type == "step_completed"]
    assert [event.data["model"] for event in completed] == ["test-model"] * 3
    assert all("latency_ms" in event.data and "prompt_tokens" in event.data for event in completed)
    assert detail.events[-1].event_type == "objective_completed"
    assert (run.steps_count, run.tool_calls_count) == (3, 2)
    assert run.total_tokens == sum(s.prompt_tokens + s.completion_tokens for s in detail.steps)
    assert store.verify_ledger(KEY).ok

    # What the LLM was sent: the tools with schemas, then each observation in its block.
    system = llm_server.requests[0]["messages"][0]["content"]
    assert "count_database (risk low)" in system
    assert '"table"' in system
    assert "delete_data" not in system  # not in this objective's tools
    last = llm_server.requests[2]["messages"]
    assert last[-1]["role"] == "user"
    assert "<observation>" in last[-1]["content"]
    assert json.loads(last[-2]["content"])["tool"] == "read_database"


def _step_json(tool, **args):
    return json.dumps({"thought": "t", "tool": tool, "args": args, "done": False})


def test_replies_in_fences_or_prose_are_understood(store, llm_server):
    _leads(store)
    objective = make_objective(store, tools_allowed=["count_database"])
    llm_server.reply(
        "Sure! Here is my step:\n```json\n"
        + _step_json("count_database", table="app_leads")
        + "\n```"
    )
    llm_server.reply('I am done. {"thought": "ok", "done": true, "summary": "3 leads"} Bye.')
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert run.status is RunStatus.COMPLETED
    assert run.summary == "3 leads"
    assert store.run_detail(run.id).steps[0].result == {"count": 3}


def test_a_malformed_reply_is_sent_back_and_the_model_repairs_it(store, llm_server):
    objective = make_objective(store)
    llm_server.reply("I think I should count the leads.")
    llm_server.reply('{"thought": "finish", "done": true}')
    llm_server.done("nothing to do")
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert run.status is RunStatus.COMPLETED
    errors = [e for e in store.list_events(run.id) if e.event_type == "step_error"]
    assert [e.data["attempt"] for e in errors] == [1, 2]
    assert errors[0].data["error"] == "the reply contains no JSON object"
    assert '"summary" is required when "done" is true' in errors[1].data["error"]
    # The model saw its bad reply and the error, and the repair turns are not kept after.
    third = llm_server.requests[2]["messages"]
    assert third[-4]["content"] == "I think I should count the leads."
    assert "the reply contains no JSON object" in third[-3]["content"]
    assert "summary" in third[-1]["content"]
    assert run.total_tokens > store.run_detail(run.id).steps[0].prompt_tokens


def test_too_many_malformed_replies_fail_the_run_as_invalid_output(store, llm_server):
    objective = make_objective(store)
    for _ in range(3):
        llm_server.reply("no json here")
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert run.status is RunStatus.FAILED
    assert run.stop_reason is StopReason.INVALID_OUTPUT
    assert "invalid 3 times in a row" in run.error
    assert [e.event_type for e in store.list_events(run.id)][-2:] == ["step_error", "run_failed"]
    assert len(llm_server.requests) == 3  # AGENT_MAX_REPAIRS=2: one try and two repairs


def test_step_budget_ends_the_run_as_failed_not_completed(store, llm_server):
    _leads(store)
    objective = make_objective(store, budget={"maxSteps": 2})
    for _ in range(5):
        llm_server.step("again", "count_database", table="app_leads")
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.BUDGET_STEPS)
    assert run.steps_count == 2
    exceeded = [e for e in store.list_events(run.id) if e.event_type == "budget_exceeded"]
    assert exceeded[0].data == {"type": "steps", "limit": 2}


def test_tool_call_budget(store, llm_server):
    _leads(store)
    objective = make_objective(store, budget={"maxToolCalls": 1})
    llm_server.step("count", "count_database", table="app_leads")
    llm_server.step("count again", "count_database", table="app_leads")
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.BUDGET_TOOL_CALLS)
    assert run.tool_calls_count == 1


def test_token_budget(store, llm_server):
    _leads(store)
    objective = make_objective(store, budget={"maxTokens": 500})
    llm_server.reply(
        _step_json("count_database", table="app_leads"), prompt_tokens=450, completion_tokens=100
    )
    llm_server.step("more", "count_database", table="app_leads")
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.BUDGET_TOKENS)
    assert run.total_tokens == 550
    assert len(llm_server.requests) == 1


def test_tokens_a_tool_spends_on_the_model_count_against_the_token_budget(store, llm_server):
    """generate_content asks the fast model: what that costs is the run's, as the agent's
    own calls are, and ends the run at its token budget."""
    from agent_core.llm import InferenceLLM
    from agent_core.runtime import build_tools
    from tests.support import agent_settings

    settings = agent_settings(hf_model_fast="fast-model")
    fast = InferenceLLM(models=["fast-model"], base_url=llm_server.url, token="t")
    tools = build_tools(settings, data_engine=store.engine, content_llm=fast)
    objective = make_objective(
        store, tools_allowed=["generate_content"], budget={"maxTokens": 1000}
    )
    llm_server.reply(
        _step_json("generate_content", prompt="Write a long report."),
        prompt_tokens=10,
        completion_tokens=5,
    )
    llm_server.reply("A long report.", model="fast-model", prompt_tokens=300, completion_tokens=900)
    llm_server.step("more", "generate_content", prompt="And another.")
    run = run_to_end(make_orchestrator(store, llm_server.url, tools=tools), objective.id)
    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.BUDGET_TOKENS)
    assert (run.prompt_tokens, run.completion_tokens) == (310, 905)
    assert len(llm_server.requests) == 2  # the agent's step and the tool's draft: no more


def test_duration_budget_also_bounds_a_step_in_flight(store, llm_server):
    objective = make_objective(store, budget={"maxDurationMs": 1500})
    llm_server.hang(10)
    started = datetime.now(UTC)
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.BUDGET_DURATION)
    assert elapsed < 4


def test_memory_across_runs(store, llm_server):
    objective = make_objective(store)
    llm_server.done("Found 3 leads; emailed none yet.")
    first = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    llm_server.done("Second pass done.")
    second = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert second.previous_run_id == first.id
    opening = llm_server.requests[1]["messages"][1]["content"]
    assert "PREVIOUS RUN:\nRun #1 (completed):\nFound 3 leads; emailed none yet." in opening
    assert "PREVIOUS RUN" not in llm_server.requests[0]["messages"][1]["content"]


def test_a_cancel_request_stops_the_run_before_its_next_step(store, llm_server):
    _leads(store)
    objective = make_objective(store)
    run = store.create_run(objective.id)

    def count_then_cancel(_request):
        store.request_cancel(run.id, by="admin")
        return _step_json("count_database", table="app_leads")

    llm_server.reply(count_then_cancel)
    llm_server.done("should never be asked")
    orchestrator = make_orchestrator(store, llm_server.url)
    store.claim_run(run.id, owner=orchestrator.owner, lease_s=60)
    ended = orchestrator.execute(run.id)
    assert (ended.status, ended.stop_reason) == (RunStatus.CANCELLED, StopReason.CANCELLED)
    assert ended.steps_count == 1
    assert len(llm_server.requests) == 1


def test_without_an_llm_the_run_fails_at_once_saying_what_to_set(store):
    objective = make_objective(store)
    run = run_to_end(make_orchestrator(store, None), objective.id)
    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.CONFIG_ERROR)
    assert "HF_TOKEN" in run.error
    assert "AGENT_LLM_BASE_URL" in run.error
    assert "Traceback" not in json.dumps([e.data for e in store.list_events(run.id)])


def test_every_model_failing_ends_the_run_as_llm_error(store, llm_server):
    objective = make_objective(store)
    llm_server.fail(500)
    llm_server.fail(503)
    run = run_to_end(
        make_orchestrator(store, llm_server.url, models=("primary", "backup")), objective.id
    )
    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.LLM_ERROR)
    assert "primary" in run.error
    assert "backup" in run.error


def test_the_fallback_model_answers_and_the_step_says_so(store, llm_server):
    objective = make_objective(store)
    llm_server.fail(500, model="primary")
    llm_server.done(
        "done by the backup",
    )
    run = run_to_end(
        make_orchestrator(store, llm_server.url, models=("primary", "backup")), objective.id
    )
    assert run.status is RunStatus.COMPLETED
    (step,) = store.run_detail(run.id).steps
    assert step.model == "backup"
    completed = next(e for e in store.list_events(run.id) if e.event_type == "step_completed")
    assert completed.data["model"] == "backup"
    assert "primary" in completed.data["fallback_from"][0]


def test_long_observations_are_cut_with_a_visible_marker(store, llm_server):
    rows = [
        {
            "id": n,
            "name": "x" * 90,
            "email": None,
            "score": n,
            "followed_up": False,
            "created_at": NOW,
        }
        for n in range(1, 101)
    ]
    create_leads(store, rows)
    objective = make_objective(store)
    llm_server.step("read all", "read_database", table="app_leads", limit=100)
    llm_server.done("read")
    run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    observation = llm_server.requests[1]["messages"][-1]["content"]
    assert "...[truncated:" in observation
    assert len(observation) < 4000 + 600


def test_a_failed_tool_is_an_observation_the_agent_adapts_to(store, llm_server):
    _leads(store)
    objective = make_objective(store)
    llm_server.step("read", "read_database", table="app_leads; drop table app_leads")
    llm_server.step("read properly", "count_database", table="app_leads")
    llm_server.done("3 leads")
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert run.status is RunStatus.COMPLETED
    first = store.run_detail(run.id).steps[0]
    assert first.status is StepStatus.FAILED
    assert "is not available to the agent" in first.result["error"]
    assert "is not available to the agent" in llm_server.requests[1]["messages"][-1]["content"]


def test_generate_content_writes_with_the_fast_model(store, llm_server):
    from agent_core.llm import InferenceLLM
    from agent_core.runtime import build_tools
    from tests.support import agent_settings

    settings = agent_settings(hf_model_fast="fast-model")
    fast = InferenceLLM(models=["fast-model"], base_url=llm_server.url, token="t", temperature=0.7)
    tools = build_tools(settings, data_engine=store.engine, content_llm=fast)
    objective = make_objective(store, tools_allowed=["generate_content"])
    llm_server.step("Draft it.", "generate_content", prompt="Write a follow-up email to Ada.")
    llm_server.reply("Dear Ada, thank you for your interest.", model="fast-model")
    llm_server.done("Drafted.")
    run = run_to_end(make_orchestrator(store, llm_server.url, tools=tools), objective.id)
    assert run.status is RunStatus.COMPLETED
    (draft,) = llm_server.requests_for("fast-model")
    assert draft["messages"] == [{"role": "user", "content": "Write a follow-up email to Ada."}]
    assert draft["temperature"] == 0.7
    step = store.run_detail(run.id).steps[0]
    assert step.result == {
        "content": "Dear Ada, thank you for your interest.",
        "model": "fast-model",
    }


def test_generate_content_without_an_llm_is_listed_and_says_what_to_set(store):
    from agent_core.llm import InferenceLLM
    from agent_core.runtime import build_tools
    from agent_core.tools.gateway import ToolGateway, validate_args
    from tests.support import agent_settings

    fast = InferenceLLM(models=["fast-model"], base_url="http://127.0.0.1:9/v1", token="t")
    settings = agent_settings()
    ready = build_tools(settings, data_engine=store.engine, content_llm=fast)
    without = build_tools(settings, data_engine=store.engine, content_llm=None)
    tool = without.get("generate_content")
    assert tool is not None

    result = ToolGateway().execute(
        tool, validate_args(tool, {"prompt": "Write to Ada."}), run_id="r", timeout_s=5
    )

    sentence = (
        "no LLM is configured: set HF_TOKEN (Hugging Face Inference Providers) or "
        "AGENT_LLM_BASE_URL (an OpenAI-compatible server such as TGI, vLLM or Ollama)"
    )
    assert (tool.problem(), ready.get("generate_content").problem()) == (sentence, None)
    assert (result.status, result.error) == (ToolCallStatus.FAILED, sentence)
