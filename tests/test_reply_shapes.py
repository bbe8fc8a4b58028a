"""No reply shape crashes a run: whatever the model (or the server) sends back becomes a
repair request, then `invalid_output`; never an exception, never a run left running."""

from __future__ import annotations

import json

import pytest

from agent_core.loop.prompting import STORED_REPLY_MAX_CHARS, parse_step
from agent_core.models import RunStatus, StepDecision, StopReason
from tests.support import agent_settings, make_objective, make_orchestrator, run_to_end

STEP = {"thought": "t", "tool": "count_database", "args": {"table": "app_leads"}, "done": False}
DEEP = 100_000


def _step(**fields):
    return json.dumps({**STEP, **fields})


def _nested_args(depth: int) -> str:
    return '{"thought": "t", "tool": "count_database", "done": false, "args": {"a": ' + (
        "[" * depth + "]" * depth + "}}"
    )


ODD_REPLIES = {
    "arrays nested 100,000 deep": "[" * DEEP + "]" * DEEP,
    "objects nested 100,000 deep": '{"a": ' * DEEP + "1" + "}" * DEEP,
    "args nested 40,000 deep": _nested_args(40_000),
    "args nested 100 deep": _nested_args(100),
    "a 5 MB reply": _step(thought="x" * 5_000_000),
    "a 5 MB reply of braces": "{" * 5_000_000,
    "a number": "42",
    "a string": '"just a string"',
    "null": "null",
    "true": "true",
    "a list": '[1, {"a": 2}]',
    "args as a list": _step(args=["app_leads"]),
    "args as a string": _step(args="app_leads"),
    "args as a number": _step(args=7),
    "thought as a number": _step(thought=3.14),
    "thought as an object": _step(thought={"a": 1}),
    "done as a list": _step(done=[True]),
    "tool as a number": _step(tool=12),
    "tool of 10,000 characters": _step(tool="t" * 10_000),
    "done with a tool": _step(done=True, summary="finished"),
    "an integer of 5,000 digits": '{"thought": "t", "done": false, "tool": "x", "args": {"n": '
    + "9" * 5000
    + "}}",
    "NaN and Infinity": '{"thought": NaN, "done": Infinity, "tool": null}',
    "a NUL everywhere": '{"thought": "\\u0000", "done": "\\u0000", "tool": "\\u0000"}',
    "an empty reply": "",
}


@pytest.mark.parametrize("reply", ODD_REPLIES.values(), ids=ODD_REPLIES.keys())
def test_no_reply_makes_parsing_raise(reply):
    result = parse_step(reply)
    assert isinstance(result, str)
    assert len(result) < 1_000  # a sentence to send back, not the reply itself


def test_done_with_a_tool_is_invalid_and_the_model_is_told_to_choose():
    error = parse_step(_step(done=True, summary="finished"))
    assert isinstance(error, str)
    assert '"done" is true but "tool" is set' in error
    assert "choose" in error


def test_done_with_a_null_tool_and_stray_args_is_still_a_final_answer():
    step = parse_step(_step(done=True, tool=None, args={}, summary="finished"))
    assert isinstance(step, StepDecision)
    assert (step.done, step.tool) == (True, None)


def test_nul_characters_are_dropped_from_a_valid_step():
    step = parse_step(_step(thought="a\u0000b", args={"table": "app\u0000_leads"}))
    assert isinstance(step, StepDecision)
    assert (step.thought, step.args) == ("ab", {"table": "app_leads"})


def test_moderate_nesting_in_args_is_still_a_step():
    step = parse_step(_nested_args(20))
    assert isinstance(step, StepDecision)


def test_a_step_after_a_few_hundred_stray_braces_is_not_searched_for_forever():
    result = parse_step("{" * 1_000 + _step())
    assert isinstance(result, str | StepDecision)  # answered at once, whichever it is


# --- in a run, against the real server ---------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        ODD_REPLIES["arrays nested 100,000 deep"],
        ODD_REPLIES["args nested 40,000 deep"],
        ODD_REPLIES["a 5 MB reply"],
        ODD_REPLIES["null"],
        ODD_REPLIES["args as a string"],
        ODD_REPLIES["thought as a number"],
        ODD_REPLIES["tool of 10,000 characters"],
        ODD_REPLIES["done with a tool"],
        ODD_REPLIES["a NUL everywhere"],
    ],
    ids=[
        "deep-arrays",
        "deep-args",
        "5MB",
        "null",
        "args-string",
        "thought-number",
        "long-tool",
        "done-and-tool",
        "nul",
    ],
)
def test_an_odd_reply_ends_the_run_as_invalid_output_after_the_repairs(store, llm_server, reply):
    objective = make_objective(store, budget={"maxTokens": 100_000_000})  # 5 MB is many tokens
    for _ in range(3):
        llm_server.reply(reply)
    settings = agent_settings(agent_max_repairs=2)

    run = run_to_end(make_orchestrator(store, llm_server.url, settings=settings), objective.id)

    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.INVALID_OUTPUT)
    assert run.steps_count == 0
    assert len(llm_server.requests) == 3
    assert len(run.error) < 2_000
    # Each repair turn sends the bad reply back bounded, never megabytes of it.
    last = llm_server.requests[-1]["messages"]
    assert all(len(m["content"]) <= STORED_REPLY_MAX_CHARS + 100 for m in last[2:])
    errors = [e for e in store.list_events(run.id) if e.event_type == "step_error"]
    assert len(errors) == 3


def test_done_with_a_tool_is_repaired_into_a_real_final_answer(store, llm_server):
    objective = make_objective(store)
    llm_server.reply(_step(done=True, summary="finished"))
    llm_server.done("Three leads.")

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert (run.status, run.summary) == (RunStatus.COMPLETED, "Three leads.")
    repair = llm_server.requests[1]["messages"][-1]["content"]
    assert '"done" is true but "tool" is set' in repair
    [step] = store.run_detail(run.id).steps
    assert step.tool is None


ODD_ENVELOPES = {
    "no choices": {"object": "chat.completion"},
    "empty choices": {"choices": []},
    "null message": {"choices": [{"index": 0, "message": None}]},
    "content as a number": {"choices": [{"message": {"role": "assistant", "content": 42}}]},
    "content as an object": {
        "choices": [{"message": {"content": {"thought": "t", "done": "maybe"}}}],
        "usage": {"prompt_tokens": "many", "completion_tokens": -3},
        "model": ["not", "a", "name"],
    },
    "content with a NUL": {"choices": [{"message": {"content": "\u0000 no step"}}]},
}


@pytest.mark.parametrize("document", ODD_ENVELOPES.values(), ids=ODD_ENVELOPES.keys())
def test_an_odd_reply_envelope_is_repaired_like_an_invalid_reply(store, llm_server, document):
    objective = make_objective(store)
    llm_server.raw(document)
    llm_server.done("Three leads.")

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert (run.status, run.stop_reason) == (RunStatus.COMPLETED, StopReason.DONE)
    [error] = [e for e in store.list_events(run.id) if e.event_type == "step_error"]
    assert error.data["model"] == "test-model"


def test_content_given_as_parts_is_read_as_their_text(store, llm_server):
    objective = make_objective(store)
    final = json.dumps({"thought": "t", "done": True, "summary": "From parts."})
    llm_server.raw(
        {
            "choices": [
                {
                    "message": {
                        "content": [
                            {"type": "text", "text": final[:10]},
                            {"type": "text", "text": final[10:]},
                        ]
                    }
                }
            ]
        }
    )

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert (run.status, run.summary) == (RunStatus.COMPLETED, "From parts.")


def test_a_huge_valid_reply_is_stored_bounded_with_a_marker(store, llm_server):
    objective = make_objective(store)
    prose = "Let me think about this at length. " * 2_000  # 70,000 characters of prose
    llm_server.reply(prose + json.dumps({"thought": "t", "done": True, "summary": "Done."}))

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert run.status is RunStatus.COMPLETED
    [step] = store.run_detail(run.id).steps
    assert len(step.raw_output) <= STORED_REPLY_MAX_CHARS + 100
    assert step.raw_output.startswith("Let me think")
    assert "[truncated: " in step.raw_output
