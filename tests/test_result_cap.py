"""Stored tool results are capped: a huge result keeps a visible marker, its full size and
its beginning, and is not stored twice in full."""

from __future__ import annotations

import json

from pydantic import BaseModel

from agent_core.loop.acting import cap_result
from agent_core.models import RiskLevel, RunStatus
from agent_core.tools import Tool, ToolRegistry
from tests.support import agent_settings, make_objective, make_orchestrator, run_to_end


def test_a_small_result_is_stored_as_it_is():
    assert cap_result({"rows": [1, 2]}, 1000) == {"rows": [1, 2]}
    assert cap_result(None, 10) is None
    assert cap_result(42, 1) == 42


def test_a_large_result_keeps_a_marker_its_size_and_its_beginning():
    value = {"text": "x" * 5000}
    capped = cap_result(value, 1000)
    size = len(json.dumps(value))
    assert capped["full_size_chars"] == size
    assert capped["note"] == (
        f"the result was {size:,} characters; only the first 1,000 are kept, in preview"
    )
    assert capped["preview"] == json.dumps(value)[:1000]


class NoArgs(BaseModel):
    pass


def test_a_1_mb_result_is_stored_capped_once_on_the_step_and_the_call(store, llm_server):
    big = Tool(
        name="export_everything",
        description="Returns a huge document.",
        risk=RiskLevel.LOW,
        side_effects=False,
        args_model=NoArgs,
        handler=lambda _args, _context: {"blob": "y" * 1_000_000},
    )
    llm_server.step("Export.", "export_everything")
    llm_server.done("Exported.")
    settings = agent_settings(agent_result_max_chars=20_000)
    orchestrator = make_orchestrator(
        store, llm_server.url, settings=settings, tools=ToolRegistry([big])
    )
    run = run_to_end(orchestrator, make_objective(store).id)
    assert run.status is RunStatus.COMPLETED
    detail = store.run_detail(run.id)
    for stored in (detail.steps[0].result, detail.tool_calls[0].result):
        assert stored["full_size_chars"] == len(json.dumps({"blob": "y" * 1_000_000}))
        assert len(stored["preview"]) == 20_000
    told = llm_server.requests[1]["messages"][-1]["content"]
    assert "only the first 20,000 are kept" in told
    assert len(told) < 10_000  # the observation is cut further, to AGENT_OBSERVATION_MAX_CHARS
