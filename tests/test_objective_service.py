"""Creating and changing objectives from plain fields, as the CLI and the dashboard do."""

from __future__ import annotations

import pytest

from agent_core.errors import InvalidFields
from agent_core.objectives import create_objective, objective_fields, update_objective
from tests.support import run_cli

KNOWN = ["count_database", "read_database", "send_email"]


def test_an_objective_is_created_from_plain_fields(store):
    created = create_objective(
        store,
        {
            "title": " Weekly leads ",
            "description": "Count last week's leads.",
            "tools_allowed": "read_database, count_database",
            "max_steps": 8,
            "max_tokens": None,
            "risk_level": "low",
            "schedule": "0 8 * * mon",
            "timezone": "Europe/Paris",
            "enabled": True,
        },
        known_tools=KNOWN,
    )
    assert created.title == "Weekly leads"
    assert created.tools_allowed == ["read_database", "count_database"]
    assert created.budget.as_document() == {"maxSteps": 8}
    assert store.get_objective(created.id) == created
    assert objective_fields(created)["max_steps"] == 8
    assert objective_fields(created)["max_tokens"] is None


def test_each_wrong_field_is_named_with_its_own_sentence(store):
    with pytest.raises(InvalidFields) as caught:
        create_objective(
            store,
            {
                "title": "",
                "description": "d",
                "max_steps": 0,
                "schedule": "every morning",
                "timezone": "Mars/Olympus",
            },
        )
    problems = caught.value.problems
    assert list(problems) == ["title", "max_steps", "schedule", "timezone"]  # form order
    assert problems["title"] == "Title is required."
    assert problems["max_steps"] == "Steps must be a whole number from 1 to 10,000."
    assert problems["schedule"].startswith("Schedule 'every morning' is not a cron expression")
    assert "needs 5 fields" in problems["schedule"]
    assert problems["timezone"] == (
        "Unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Paris)."
    )
    assert str(caught.value).count("; ") == 3  # every problem is named, not just the first
    assert "timezone: Unknown time zone 'Mars/Olympus'" in str(caught.value)
    assert store.list_objectives() == []


@pytest.mark.parametrize(
    ("fields", "field", "sentence"),
    [
        ({"title": "x" * 201}, "title", "Title must be at most 200 characters."),
        ({"description": "  "}, "description", "Description is required."),
        ({"risk_level": "extreme"}, "risk_level", "Risk level must be 'low', 'medium' or 'high'."),
        ({"enabled": "maybe"}, "enabled", "Enabled must be yes or no."),
        (
            {"tools_allowed": "read_database, Send"},
            "tools_allowed",
            "Tool name 'Send' is not valid: use lower-case letters, digits and _.",
        ),
    ],
)
def test_a_problem_is_one_sentence_naming_the_field_not_pydantics_wording(
    store, fields, field, sentence
):
    with pytest.raises(InvalidFields) as caught:
        create_objective(store, {"title": "t", "description": "d", **fields})
    assert caught.value.problems == {field: sentence}


@pytest.mark.parametrize(
    "typed", ["-5", "abc", "1.5", "99999999999999999999", "1,5", "0", "9" * 5000]
)
def test_a_budget_that_is_not_a_whole_number_within_its_bounds_is_refused(store, typed):
    with pytest.raises(InvalidFields) as caught:
        create_objective(store, {"title": "t", "description": "d", "max_steps": typed})
    assert caught.value.problems == {"max_steps": "Steps must be a whole number from 1 to 10,000."}
    assert store.list_objectives() == []


def test_each_budget_names_its_own_bounds(store):
    with pytest.raises(InvalidFields) as caught:
        create_objective(
            store,
            {
                "title": "t",
                "description": "d",
                "max_tool_calls": "-1",
                "max_duration_ms": "forever",
                "max_tokens": True,
            },
        )
    assert caught.value.problems == {
        "max_tool_calls": "Tool calls must be a whole number from 0 to 100,000.",
        "max_duration_ms": "Duration (ms) must be a whole number from 1 to 2,592,000,000.",
        "max_tokens": "Tokens must be a whole number from 1 to 1,000,000,000,000.",
    }


def test_a_budget_is_read_as_typed_with_thousands_separators_and_empty_is_the_default(store):
    created = create_objective(
        store,
        {
            "title": "t",
            "description": "d",
            "max_steps": " 12 ",
            "max_tool_calls": "0",
            "max_duration_ms": "60,000",
            "max_tokens": "",
        },
    )
    assert created.budget.as_document() == {
        "maxSteps": 12,
        "maxToolCalls": 0,
        "maxDurationMs": 60_000,
    }
    assert objective_fields(created)["max_tokens"] is None


def test_an_unknown_tool_is_refused_with_the_tools_that_exist(store):
    with pytest.raises(InvalidFields) as caught:
        create_objective(
            store,
            {"title": "t", "description": "d", "tools_allowed": ["send_emails"]},
            known_tools=KNOWN,
        )
    assert caught.value.problems == {
        "tools_allowed": "Unknown tool 'send_emails'; the tools are: "
        "count_database, read_database, send_email."
    }


def test_an_update_changes_only_the_fields_given_and_none_restores_a_default(store):
    created = create_objective(
        store,
        {
            "title": "t",
            "description": "d",
            "max_steps": 5,
            "max_tool_calls": 2,
            "schedule": "0 9 * * *",
        },
    )
    updated = update_objective(store, created.id, {"max_steps": None, "schedule": ""})
    assert updated.budget.as_document() == {"maxToolCalls": 2}
    assert updated.schedule is None
    assert (updated.title, updated.description) == ("t", "d")
    with pytest.raises(InvalidFields) as caught:
        update_objective(store, created.id, {"colour": "blue"})
    assert caught.value.problems == {"colour": "colour is not a field of an objective"}


def test_the_cli_names_the_option_and_refuses_an_unknown_tool(store, monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = run_cli(
        ["objective", "create", "--title", "t", "--description", "d", "--tools", "sned_email"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --tools: Unknown tool 'sned_email'; the tools are: ")
    assert "send_email" in result.stderr
    for typed in ("0", "abc", "1.5"):
        base = ["objective", "create", "--title", "t", "--description", "d"]
        bad = run_cli([*base, "--max-steps", typed])
        assert bad.exit_code == 2
        assert bad.stderr == "error: --max-steps: Steps must be a whole number from 1 to 10,000.\n"
    assert store.list_objectives() == []


def test_the_cli_reads_budgets_as_the_form_does(store, monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    base = ["objective", "create", "--title", "t", "--description", "d"]
    created = run_cli([*base, "--max-tokens", "20,000", "--max-steps", "7", "--json"])
    assert created.exit_code == 0, created.stderr
    (objective,) = store.list_objectives()
    assert objective.budget.as_document() == {"maxSteps": 7, "maxTokens": 20_000}
    cleared = run_cli(["objective", "update", objective.id, "--max-steps", ""])
    assert cleared.exit_code == 0, cleared.stderr
    assert store.get_objective(objective.id).budget.as_document() == {"maxTokens": 20_000}
