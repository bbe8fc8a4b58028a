"""`python -m agent_core`: every command, its --json document, and its bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from agent_core.store import Store
from agent_core.store.migrations import head_revision
from agent_core.store.schema import events, objectives
from tests.support import SECRET_KEY, make_objective, run_cli, tamper

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli_database(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AGENT_SECRET_KEY", SECRET_KEY)  # signs approvals and the ledger's seals
    return database_url


def _json(result):
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_db_upgrade_creates_the_schema_once(empty_database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    first = _json(run_cli(["db", "upgrade", "--json"]))
    assert (first["revision"], first["previous_revision"]) == (head_revision(), None)
    again = run_cli(["db", "upgrade"])
    assert again.exit_code == 0
    assert f"was already at schema revision {head_revision()}" in again.stdout


def test_objective_create_then_show_and_list(cli_database):
    created = _json(
        run_cli(
            [
                "objective",
                "create",
                "--json",
                "--title",
                "Weekly leads follow-up",
                "--description",
                "Every Monday, find last week's leads without a follow-up.",
                "--tools",
                "read_database,count_database",
                "--max-steps",
                "8",
                "--max-tool-calls",
                "12",
                "--max-duration-ms",
                "60000",
                "--risk-level",
                "low",
                "--schedule",
                "0 8 * * mon",
                "--timezone",
                "Europe/Paris",
            ]
        )
    )
    assert created["title"] == "Weekly leads follow-up"
    assert created["tools_allowed"] == ["read_database", "count_database"]
    assert created["budget"] == {
        "maxSteps": 8,
        "maxToolCalls": 12,
        "maxDurationMs": 60000,
        "maxTokens": None,
    }
    assert created["risk_level"] == "low"
    assert created["schedule"] == "0 8 * * mon"
    assert created["enabled"] is True

    shown = _json(run_cli(["--json", "objective", "show", created["id"]]))
    assert shown == created
    listed = _json(run_cli(["objective", "list", "--json"]))
    assert [item["id"] for item in listed] == [created["id"]]

    text = run_cli(["objective", "list"])
    assert created["id"] in text.stdout
    assert "0 8 * * mon (Europe/Paris)" in text.stdout
    detail = run_cli(["objective", "show", created["id"]])
    assert "budget       Steps 8" in detail.stdout


def test_objective_show_tells_the_schedule_in_words_and_the_next_runs(cli_database):
    before = datetime.now(UTC)
    created = _json(
        run_cli(
            [
                "objective",
                "create",
                "--json",
                "--title",
                "Weekday digest",
                "--description",
                "Summarise yesterday's leads.",
                "--schedule",
                "0 9 * * 1-5",
                "--timezone",
                "Europe/Paris",
            ]
        )
    )
    slots = [datetime.fromisoformat(text) for text in created["next_runs"]]
    assert all(text.endswith("Z") for text in created["next_runs"])  # ISO 8601, UTC
    assert len(slots) == 3
    assert before < slots[0] < slots[1] < slots[2] < before + timedelta(days=6)
    paris = [slot.astimezone(ZoneInfo("Europe/Paris")) for slot in slots]
    assert all(f"{moment:%H:%M}" == "09:00" and moment.weekday() < 5 for moment in paris)
    shown = _json(run_cli(["objective", "show", created["id"], "--json"]))
    assert shown["next_runs"] == created["next_runs"]
    assert "next_runs" not in _json(run_cli(["objective", "list", "--json"]))[0]

    text = run_cli(["objective", "show", created["id"]]).stdout
    assert "schedule     0 9 * * 1-5 (Europe/Paris): At 09:00, Monday through Friday\n" in text
    expected = ", ".join(f"{moment:%Y-%m-%d %H:%M %Z}" for moment in paris)
    assert f"next runs    {expected}\n" in text
    assert re.search(r"next runs    \d{4}-\d\d-\d\d 09:00 CES?T, ", text)

    disabled = _json(run_cli(["objective", "update", created["id"], "--disable", "--json"]))
    assert disabled["next_runs"] == []
    text = run_cli(["objective", "show", created["id"]]).stdout
    assert "next runs    none while the objective is disabled" in text
    cleared = _json(
        run_cli(["objective", "update", created["id"], "--schedule", "", "--enable", "--json"])
    )
    assert (cleared["schedule"], cleared["next_runs"]) == (None, [])
    assert (
        "schedule     -\nnext runs    -\n" in run_cli(["objective", "show", created["id"]]).stdout
    )


def test_a_schedule_outside_standard_crontab_is_refused_in_words(cli_database):
    result = run_cli(
        ["objective", "create", "--title", "t", "--description", "d", "--schedule", "0 9 * * 8"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --schedule: Schedule '0 9 * * 8' is not a valid cron expression: the weekday "
        "field takes 0 to 7 (0 and 7 are Sunday) or sun to sat, not 8.\n"
    )
    sunday = _json(
        run_cli(
            [
                *("objective", "create", "--json", "--title", "t", "--description", "d"),
                *("--schedule", "0  9 * * SUN"),
            ]
        )
    )
    assert sunday["schedule"] == "0 9 * * sun"
    assert {datetime.fromisoformat(text).weekday() for text in sunday["next_runs"]} == {6}


def test_a_stored_schedule_the_rules_now_refuse_is_still_shown(cli_database):
    store = Store.open(cli_database)
    try:
        objective = make_objective(store, schedule="0 9 * * *")
        with store.engine.begin() as conn:  # as an older version stored it
            conn.execute(
                sa.update(objectives)
                .where(objectives.c.id == objective.id)
                .values(schedule="0 9 last * *")
            )
    finally:
        store.close()
    shown = _json(run_cli(["objective", "show", objective.id, "--json"]))
    assert (shown["schedule"], shown["next_runs"]) == ("0 9 last * *", [])
    text = run_cli(["objective", "show", objective.id]).stdout
    assert "the day field takes 1 to 31, not 'last'" in text
    assert "next runs    none until the schedule is fixed" in text


def test_objective_list_when_there_are_none_says_how_to_create_one(cli_database):
    result = run_cli(["objective", "list"])
    assert result.exit_code == 0
    assert "objective create" in result.stdout
    assert _json(run_cli(["objective", "list", "--json"])) == []


def test_run_list_and_show(cli_database, clock):
    store = Store.open(cli_database, clock=clock)
    try:
        objective = make_objective(store)
        other = make_objective(store, title="Other")
        first = store.create_run(objective.id)
        second = store.create_run(objective.id)
        store.create_run(other.id)
    finally:
        store.close()

    runs = _json(run_cli(["run", "list", "--json", "--objective", objective.id]))
    assert [run["id"] for run in runs] == [second.id, first.id]
    assert _json(run_cli(["run", "list", "--json", "--status", "completed"])) == []
    assert len(_json(run_cli(["run", "list", "--json", "--limit", "2"]))) == 2

    detail = _json(run_cli(["run", "show", first.id, "--json"]))
    assert detail["run"]["id"] == first.id
    assert detail["run"]["status"] == "queued"
    assert [event["event_type"] for event in detail["events"]] == ["run_queued"]
    assert detail["steps"] == detail["tool_calls"] == detail["approvals"] == []

    text = run_cli(["run", "show", first.id])
    assert text.stdout.startswith("Run #1 waiting for a worker.")
    assert "Weekly leads" in text.stdout
    assert "(no step yet)" in text.stdout
    assert "Queued by an admin." in text.stdout
    listing = run_cli(["run", "list"])
    assert first.id in listing.stdout
    assert [line.split()[1] for line in listing.stdout.splitlines()[1:]] == [
        "Other",  # each run with its objective's title
        "Weekly",
        "Weekly",
    ]


def test_ledger_verify_names_the_broken_event(cli_database):
    store = Store.open(cli_database)
    try:
        run = store.create_run(make_objective(store).id)
    finally:
        store.close()
    ok = run_cli(["ledger", "verify"])
    assert ok.exit_code == 0
    assert "ledger OK: 1 event in 1 run verified" in ok.stdout

    tamper(
        cli_database,
        lambda conn: conn.execute(events.update().values(data={"objective_id": "someone else"})),
    )
    broken = run_cli(["ledger", "verify", "--json"])
    assert broken.exit_code == 1
    report = json.loads(broken.stdout)
    assert report["ok"] is False
    assert report["breaks"] == [
        {
            "run_id": run.id,
            "seq": 1,
            "problem": "event content does not match its hash: it was edited",
        }
    ]
    text = run_cli(["ledger", "verify", "--run", run.id])
    assert text.exit_code == 1
    assert f"run {run.id} event 1: event content does not match its hash" in text.stdout


def test_config_check_prints_settings_without_secrets(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("DATABASE_URL", "postgresql://agent:pa55word@db.example.com:5432/postgres")
    result = run_cli(["config", "check"])
    assert result.exit_code == 0
    assert "AGENT_MAX_STEPS" in result.stdout
    assert "hf_secret_value" not in result.stdout
    assert "pa55word" not in result.stdout
    assert re.search(r"(?m)^AGENT_DATA_DATABASE_URL +\(DATABASE_URL\)$", result.stdout)
    assert re.search(r"(?m)^AGENT_MODEL_PRICES +-$", result.stdout)
    document = _json(run_cli(["config", "check", "--json"]))
    assert document["agent_max_steps"] == 20
    assert document["hf_token"] == "set"


MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["objective", "create", "--description", "d"],
            "the following arguments are required: --title",
        ),
        (
            ["objective", "create", "--title", " ", "--description", "d"],
            "--title: Title is required.",
        ),
        (
            ["objective", "create", "--title", "t", "--description", "d", "--max-steps", "abc"],
            "--max-steps: Steps must be a whole number from 1 to 10,000.",
        ),
        (
            ["objective", "create", "--title", "t", "--description", "d", "--max-steps", "0"],
            "--max-steps: Steps must be a whole number from 1 to 10,000.",
        ),
        (
            [
                "objective",
                "create",
                "--title",
                "t",
                "--description",
                "d",
                "--risk-level",
                "extreme",
            ],
            "argument --risk-level: invalid choice: 'extreme'",
        ),
        (
            [
                "objective",
                "create",
                "--title",
                "t",
                "--description",
                "d",
                "--schedule",
                "every monday",
            ],
            "--schedule: Schedule 'every monday' is not a cron expression",
        ),
        (
            [
                "objective",
                "create",
                "--title",
                "t",
                "--description",
                "d",
                "--schedule",
                "0 25 * * *",
            ],
            "--schedule: Schedule '0 25 * * *' is not a valid cron expression",
        ),
        (
            [
                "objective",
                "create",
                "--title",
                "t",
                "--description",
                "d",
                "--timezone",
                "Mars/Olympus",
            ],
            "--timezone: Unknown time zone 'Mars/Olympus'",
        ),
        (
            [
                "objective",
                "create",
                "--title",
                "t",
                "--description",
                "d",
                "--tools",
                "read_database,DROP TABLE",
            ],
            "--tools: Tool name 'DROP TABLE' is not valid",
        ),
        (["objective", "show", "nope"], "'nope' is not a valid objective id"),
        (["objective", "show", MISSING], f"no objective has id {MISSING}"),
        (["run", "show", MISSING], f"no run has id {MISSING}"),
        (["run", "list", "--status", "sleeping"], "argument --status: invalid choice: 'sleeping'"),
        (["run", "list", "--limit", "0"], "--limit must be at least 1"),
        (["run", "list", "--objective", "x'; --"], "is not a valid objective id"),
        (["ledger", "verify", "--run", "nope"], "'nope' is not a valid run id"),
        (["objective"], "the following arguments are required: ACTION"),
        (["launch"], "argument COMMAND: invalid choice: 'launch'"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_code_2(cli_database, args, message):
    result = run_cli([*args, "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert json.loads(result.stdout) == {"error": result.stderr[7:].strip(), "exit_code": 2}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AGENT_MAX_STEPS", "abc", "AGENT_MAX_STEPS: Input should be a valid integer"),
        ("AGENT_ALLOWED_RISK_LEVELS", "low,extreme", "AGENT_ALLOWED_RISK_LEVELS"),
        ("DATABASE_URL", "postgresql://", "DATABASE_URL: a PostgreSQL URL needs a host"),
    ],
)
def test_a_bad_setting_stops_every_command_with_exit_code_2(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    result = run_cli(["objective", "list"])
    assert result.exit_code == 2
    assert result.stderr == f"error: {result.stderr[7:].strip()}\n"
    assert message in result.stderr


def test_an_unreachable_database_is_a_failure_with_exit_code_1(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://agent:pw@127.0.0.1:1/agent")
    result = run_cli(["objective", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: cannot use the database at postgresql+psycopg://agent:***@127.0.0.1:1/agent"
    )
    assert "pw@" not in result.stderr


def test_a_database_never_upgraded_is_a_failure_saying_what_to_run(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:///fresh.db")
    result = run_cli(["run", "list"])
    assert result.exit_code == 1
    assert "run `.venv/bin/python -m agent_core db upgrade` first" in result.stderr


def _module(args, env, cwd):
    return subprocess.run(
        [sys.executable, "-m", "agent_core", *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_module_entry_point_prints_one_json_document(isolated_environment):
    upgraded = _module(["db", "upgrade", "--json"], {}, isolated_environment)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (isolated_environment / "agent_runtime.db").exists()  # the embedded default
    created = _module(
        ["--json", "objective", "create", "--title", "t", "--description", "d"],
        {},
        isolated_environment,
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["title"] == "t"
    listed = _module(["objective", "list", "--json"], {}, isolated_environment)
    assert len(json.loads(listed.stdout)) == 1


def test_the_module_entry_point_never_shows_a_traceback(isolated_environment):
    bad = _module(["objective", "list"], {"AGENT_MAX_STEPS": "abc"}, isolated_environment)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1
    missing = _module(["objective", "list"], {}, isolated_environment)
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr


def test_objective_update_changes_only_what_is_given(cli_database):
    created = _json(
        run_cli(
            [
                "objective",
                "create",
                "--json",
                "--title",
                "t",
                "--description",
                "d",
                "--tools",
                "read_database",
                "--max-steps",
                "5",
            ]
        )
    )
    updated = _json(
        run_cli(
            [
                "objective",
                "update",
                created["id"],
                "--json",
                "--schedule",
                "0 8 * * mon",
                "--timezone",
                "Europe/Paris",
                "--max-tool-calls",
                "3",
                "--disable",
            ]
        )
    )
    assert updated["schedule"] == "0 8 * * mon"
    assert updated["timezone"] == "Europe/Paris"
    assert updated["enabled"] is False
    assert updated["budget"]["maxSteps"] == 5
    assert updated["budget"]["maxToolCalls"] == 3
    assert updated["tools_allowed"] == ["read_database"]
    assert updated["title"] == "t"
    cleared = _json(
        run_cli(["objective", "update", created["id"], "--json", "--schedule", "", "--enable"])
    )
    assert (cleared["schedule"], cleared["enabled"]) == (None, True)
    bad = run_cli(["objective", "update", created["id"], "--schedule", "whenever"])
    assert bad.exit_code == 2
    assert "--schedule: Schedule 'whenever' is not a cron expression" in bad.stderr
    both = run_cli(["objective", "update", created["id"], "--enable", "--disable"])
    assert both.exit_code == 2
