"""Reading the model's reply: the step it proposes, or what to tell it is wrong. Pure: no
database, no server."""

from __future__ import annotations

import json

import pytest

from agent_core.loop.prompting import MAX_JSON_DEPTH, parse_step, repair_request
from agent_core.models import StepDecision


def _step(**fields):
    return json.dumps(
        {"thought": "t", "tool": "count_database", "args": {}, "done": False, **fields}
    )


def test_a_bare_object_is_the_step():
    step = parse_step(_step(args={"table": "app_leads"}))
    assert isinstance(step, StepDecision)
    assert (step.tool, step.args, step.done) == ("count_database", {"table": "app_leads"}, False)


def test_a_code_fence_around_the_object_is_ignored():
    step = parse_step(f"```json\n{_step()}\n```")
    assert isinstance(step, StepDecision)
    assert step.tool == "count_database"


def test_prose_around_the_object_is_ignored():
    text = f"Sure, here is my next step: {_step(thought='count them')} Let me know!"
    step = parse_step(text)
    assert isinstance(step, StepDecision)
    assert step.thought == "count them"


def test_braces_in_prose_before_the_object_are_skipped():
    step = parse_step("I use {curly} words, then: " + _step())
    assert isinstance(step, StepDecision)


def test_of_several_objects_the_first_valid_step_wins():
    text = _step(tool="first") + "\n" + _step(tool="second")
    step = parse_step(text)
    assert isinstance(step, StepDecision)
    assert step.tool == "first"


def test_an_invalid_object_before_a_valid_one_is_passed_over():
    text = '{"thought": "oops", "done": false} and then ' + _step(tool="second")
    step = parse_step(text)
    assert isinstance(step, StepDecision)
    assert step.tool == "second"


def test_when_no_object_is_a_step_the_first_problem_is_told():
    text = '{"thought": "a", "done": true} {"thought": "b", "done": false}'
    error = parse_step(text)
    assert error == (
        'the JSON object is not a valid step: value: "summary" is required when "done" is true'
    )


@pytest.mark.parametrize(
    "text",
    [
        "I think I should count the leads.",
        "",
        '{"thought": "cut short", "done": tr',  # invalid JSON
        "[1, 2, 3]",  # JSON, but not an object
        '"just a string"',
        "42",
    ],
)
def test_a_reply_without_a_json_object_says_so(text):
    assert parse_step(text) == "the reply contains no JSON object"


def test_done_without_a_summary_is_refused():
    for summary in (None, "", "   "):
        error = parse_step(json.dumps({"thought": "t", "done": True, "summary": summary}))
        assert isinstance(error, str)
        assert '"summary" is required when "done" is true' in error


def test_done_with_a_summary_needs_no_tool():
    step = parse_step('{"thought": "ok", "done": true, "summary": "3 leads"}')
    assert isinstance(step, StepDecision)
    assert (step.done, step.summary, step.tool) == (True, "3 leads", None)


def test_a_step_that_is_not_done_needs_a_tool():
    for tool in (None, "", " "):
        error = parse_step(json.dumps({"thought": "t", "tool": tool, "done": False}))
        assert isinstance(error, str)
        assert '"tool" is required when "done" is false' in error


def test_missing_keys_are_named():
    error = parse_step('{"tool": "count_database", "done": false}')
    assert isinstance(error, str)
    assert error.startswith("the JSON object is not a valid step: thought:")
    assert "required" in error.lower()


def test_args_must_be_an_object():
    error = parse_step(_step(args=["app_leads"]))
    assert isinstance(error, str)
    assert "args" in error


def test_unknown_keys_are_ignored():
    step = parse_step(_step(confidence=0.9))
    assert isinstance(step, StepDecision)


def test_the_repair_request_repeats_the_error_and_the_format():
    request = repair_request("the reply contains no JSON object")
    assert "the reply contains no JSON object" in request
    for key in ("thought", "tool", "args", "done", "summary"):
        assert f'"{key}"' in request


def _args_nested(levels):
    """A step whose args hold `levels` containers in all (the step object included)."""
    inner = "1"
    for _ in range(levels - 1):
        inner = '{"a": ' + inner + "}"
    return '{"thought": "t", "tool": "x", "done": false, "args": ' + inner + "}"


@pytest.mark.parametrize(
    ("levels", "accepted"),
    [(MAX_JSON_DEPTH - 1, True), (MAX_JSON_DEPTH, False), (MAX_JSON_DEPTH + 1, False)],
)
def test_the_depth_limit_holds_at_its_edge(levels, accepted):
    step = parse_step(_args_nested(levels))
    if accepted:
        assert isinstance(step, StepDecision)
    else:
        assert step == (
            f"the JSON object is not a valid step: the JSON nests deeper than {MAX_JSON_DEPTH} "
            "levels"
        )


def test_nul_characters_are_dropped_whether_escaped_or_not_in_the_same_reply():
    step = parse_step('{"thought": "a\\u0000b", "tool": "x\\u0000", "done": false}')
    assert isinstance(step, StepDecision)
    assert (step.thought, step.tool) == ("ab", "x")


def test_a_lone_surrogate_escape_becomes_a_replacement_character_that_can_be_stored():
    # "\ud800" alone decodes to a character no UTF-8 text holds (the step's write failed on
    # it); a proper pair ("\ud83d\ude00") is one emoji and stays.
    reply = (
        '{"thought": "a\\ud800b \\ud83d\\ude00", "tool": "read_database", '
        '"args": {"name\\uDC00": "Zo\\ud83d"}, "done": false}'
    )
    step = parse_step(reply)
    assert isinstance(step, StepDecision)
    assert step.thought == "a\ufffdb \U0001f600"
    assert step.args == {"name\ufffd": "Zo\ufffd"}
    json.dumps(step.model_dump(), ensure_ascii=False).encode("utf-8")  # storable as UTF-8
