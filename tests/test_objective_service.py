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
    assert set(problems) == {"title", "max_steps", "schedule", "timezone"}
    assert "at least 1 character" in problems["title"]
    assert problems["max_steps"] == "Input should be greater than or equal to 1"
    assert "needs 5 fields" in problems["schedule"]
    assert "unknown time zone 'Mars/Olympus'" in problems["timezone"]
    assert str(caught.value).count("; ") == 3  # every problem is named, not just the first
    assert "timezone: unknown time zone 'Mars/Olympus'" in str(caught.value)
    assert store.list_objectives() == []


def test_an_unknown_tool_is_refused_with_the_tools_that_exist(store):
    with pytest.raises(InvalidFields) as caught:
        create_objective(
            store,
            {"title": "t", "description": "d", "tools_allowed": ["send_emails"]},
            known_tools=KNOWN,
        )
    assert caught.value.problems == {
        "tools_allowed": "unknown tool 'send_emails'; the tools are: "
        "count_database, read_database, send_email"
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
    assert result.stderr.startswith("error: --tools: unknown tool 'sned_email'; the tools are: ")
    assert "send_email" in result.stderr
    bad = run_cli(["objective", "create", "--title", "t", "--description", "d", "--max-steps", "0"])
    assert bad.stderr == "error: --max-steps: Input should be greater than or equal to 1\n"
