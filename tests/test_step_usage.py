"""Each step keeps the LLM server's usage object as it came (every field: cached and
reasoning token details when reported), so that its cost can be recomputed later."""

from __future__ import annotations

import json

from agent_core.llm import InferenceLLM, ScriptedLLM
from agent_core.models import NewStep, RunStatus
from tests.support import make_objective, make_orchestrator, run_to_end

DETAILS = {
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 77},
    "cost": 0.0123,  # a field some servers add: kept as well
}
DONE = json.dumps({"thought": "t", "tool": None, "args": None, "done": True, "summary": "ok"})


def test_the_reply_carries_every_field_of_the_usage_object(llm_server):
    llm_server.reply("Hello.", prompt_tokens=1500, completion_tokens=90, usage=DETAILS)
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url, token="test-token")
    reply = llm.complete([{"role": "user", "content": "hi"}], timeout_s=10)
    assert reply.usage == {
        "prompt_tokens": 1500,
        "completion_tokens": 90,
        "total_tokens": 0,
        **DETAILS,
    }
    assert (reply.prompt_tokens, reply.completion_tokens) == (1500, 90)


def test_a_run_stores_the_usage_with_each_step(store, llm_server):
    objective = make_objective(store, tools_allowed=["count_database"])
    llm_server.reply(DONE, prompt_tokens=1500, completion_tokens=90, usage=DETAILS)
    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)
    assert run.status is RunStatus.COMPLETED
    (step,) = store.list_steps(run.id)
    assert step.usage == {
        "prompt_tokens": 1500,
        "completion_tokens": 90,
        "total_tokens": 0,
        **DETAILS,
    }
    assert (step.prompt_tokens, step.completion_tokens) == (1500, 90)


def test_without_a_usage_object_the_step_has_none(store):
    assert (
        ScriptedLLM([DONE]).complete([{"role": "user", "content": "x"}], timeout_s=1).usage is None
    )
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="test-worker", lease_s=60)
    store.start_step(run.id, NewStep(thought="t", model="m", prompt_tokens=3))
    (step,) = store.list_steps(run.id)
    assert step.usage is None
