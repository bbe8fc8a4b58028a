"""`objective create | update | list | show`: what the agent is asked to do.

The rules (fields, schedules, known tools) are in the service, agent_core.objectives; here
are the options, the error sentences in their names, and the text of an objective.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agent_core.cli.common import Commands, Context, Output, document
from agent_core.errors import InvalidFields, InvalidInput

if TYPE_CHECKING:
    from datetime import datetime

    from agent_core.models import Objective
    from agent_core.store import Store

# How the CLI names each field of an objective, in its error sentences.
_OBJECTIVE_OPTIONS = {
    "title": "--title",
    "description": "--description",
    "tools_allowed": "--tools",
    "max_steps": "--max-steps",
    "max_tool_calls": "--max-tool-calls",
    "max_duration_ms": "--max-duration-ms",
    "max_tokens": "--max-tokens",
    "risk_level": "--risk-level",
    "schedule": "--schedule",
    "timezone": "--timezone",
    "enabled": "--enable/--disable",
}


def register(commands: Commands) -> None:
    objective = commands.group("objective", "what the agent is asked to do")
    create = objective.command("create", _objective_create, "create an objective")
    create.add_argument("--title", required=True)
    create.add_argument("--description", required=True)
    create.add_argument("--tools", default="", help="comma-separated tools the agent may use")
    _budget_options(create, "the AGENT_* default when not given")
    create.add_argument("--risk-level", choices=["low", "medium", "high"], default="medium")
    create.add_argument("--schedule", help="cron expression, e.g. '0 8 * * mon'")
    create.add_argument("--timezone", default="UTC", help="IANA time zone of the schedule")
    create.add_argument("--disabled", action="store_true", help="create it switched off")
    update = objective.command("update", _objective_update, "change an objective")
    update.add_argument("objective_id", metavar="ID")
    update.add_argument("--title")
    update.add_argument("--description")
    update.add_argument("--tools", help="comma-separated tools the agent may use ('' for any)")
    _budget_options(update, "'' for the AGENT_* default")
    update.add_argument("--risk-level", choices=["low", "medium", "high"])
    update.add_argument("--schedule", help="cron expression; '' removes the schedule")
    update.add_argument("--timezone")
    switch = update.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_true")
    switch.add_argument("--disable", action="store_true")
    objective.command("list", _objective_list, "list objectives")
    show = objective.command("show", _objective_show, "show one objective")
    show.add_argument("objective_id", metavar="ID")


def _budget_options(parser: argparse.ArgumentParser, default: str) -> None:
    """The budget options, read as text: the service parses them (`20,000` too) and words
    a wrong value as the dashboard does, naming what is allowed."""
    for option in ("--max-steps", "--max-tool-calls", "--max-duration-ms", "--max-tokens"):
        parser.add_argument(option, metavar="N", help=f"a whole number; {default}")


# --- handlers ---------------------------------------------------------------------------------


def _objective_create(args: argparse.Namespace, context: Context) -> Output:
    from agent_core import objectives

    fields = {**_given_fields(args), "enabled": not args.disabled}
    with _named_options():
        objective = objectives.create_objective(
            context.store(), fields, known_tools=context.tool_names()
        )
    return _objective_output(objective, context.store())


def _objective_update(args: argparse.Namespace, context: Context) -> Output:
    from agent_core import objectives

    changes = _given_fields(args)
    if args.enable or args.disable:
        changes["enabled"] = bool(args.enable)
    with _named_options():
        objective = objectives.update_objective(
            context.store(), args.objective_id, changes, known_tools=context.tool_names()
        )
    return _objective_output(objective, context.store())


def _objective_list(_: argparse.Namespace, context: Context) -> Output:
    from agent_core.render import format_table

    found = context.store().list_objectives()
    table = format_table(
        ["ID", "TITLE", "RISK", "TOOLS", "SCHEDULE", "ENABLED", "RUNS"],
        [
            [
                item.id,
                item.title,
                item.risk_level,
                ",".join(item.tools_allowed) or "-",
                f"{item.schedule} ({item.timezone})" if item.schedule else "-",
                "yes" if item.enabled else "no",
                item.last_run_number,
            ]
            for item in found
        ],
        empty=(
            "no objectives yet: create one with `.venv/bin/python -m agent_core objective create`"
        ),
    )
    return Output(document(found), table)


def _objective_show(args: argparse.Namespace, context: Context) -> Output:
    store = context.store()
    return _objective_output(store.get_objective(args.objective_id), store)


def _given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The objective fields given on the command line (`--tools` is `tools_allowed`)."""
    from agent_core.objectives import OBJECTIVE_FIELDS

    given = {
        field: getattr(args, "tools" if field == "tools_allowed" else field)
        for field in OBJECTIVE_FIELDS
        if field != "enabled"
    }
    return {field: value for field, value in given.items() if value is not None}


@contextmanager
def _named_options() -> Iterator[None]:
    """Field problems worded with the option names the admin typed."""
    try:
        yield
    except InvalidFields as exc:
        raise InvalidInput(exc.sentence(_OBJECTIVE_OPTIONS)) from None


# --- text rendering ---------------------------------------------------------------------------


def _objective_output(objective: Objective, store: Store) -> Output:
    """The objective, plus `next_runs`: its next three slots in UTC (ISO 8601), empty when it
    has no schedule or is disabled; the text words the schedule and gives those slots in the
    objective's time zone."""
    from zoneinfo import ZoneInfo

    from agent_core.objectives import upcoming_runs
    from agent_core.schedules import describe_schedule

    upcoming: list[datetime] = []
    words = next_runs = "-"
    if objective.schedule:
        try:
            words = describe_schedule(objective.schedule)
            upcoming = upcoming_runs(objective, after=store.now())
        except ValueError as exc:  # stored before the rules it breaks: shown all the same
            words, next_runs = str(exc), "none until the schedule is fixed"
        else:
            zone = ZoneInfo(objective.timezone)
            next_runs = (
                ", ".join(f"{slot.astimezone(zone):%Y-%m-%d %H:%M %Z}" for slot in upcoming)
                if objective.enabled
                else "none while the objective is disabled"
            )
    result = {
        **document(objective),
        "next_runs": [f"{slot:%Y-%m-%dT%H:%M:%SZ}" for slot in upcoming],
    }
    return Output(result, _objective_text(objective, words, next_runs))


def _objective_text(objective: Objective, schedule_words: str, next_runs: str) -> str:
    from agent_core.render import OBJECTIVE_FIELD_NAMES, format_time

    budget = objective.budget.model_dump(exclude_none=True)  # its own limits; the rest default
    schedule = "-"
    if objective.schedule:
        schedule = f"{objective.schedule} ({objective.timezone}): {schedule_words}"
    rows = [
        ("id", objective.id),
        ("title", objective.title),
        ("description", objective.description),
        ("tools", ",".join(objective.tools_allowed) or "(any allowed by policy)"),
        ("risk level", objective.risk_level),
        (
            "budget",
            ", ".join(f"{OBJECTIVE_FIELD_NAMES[name]} {value:,}" for name, value in budget.items())
            or "defaults",
        ),
        ("schedule", schedule),
        ("next runs", next_runs),
        ("enabled", "yes" if objective.enabled else "no"),
        ("runs", objective.last_run_number),
        ("created", format_time(objective.created_at)),
    ]
    return "\n".join(f"{label:<12} {value}" for label, value in rows)
