"""Creating and changing objectives from plain fields: the one place both the CLI and the
dashboard go through, so a rule (a valid schedule, a known tool, a budget of at least one
step) holds whichever face the admin uses.

Fields are flat, as a form or a command line has them: `title`, `description`,
`tools_allowed` (a list, or names separated by commas), `max_steps`, `max_tool_calls`,
`max_duration_ms`, `max_tokens` (a whole number, or its text as typed: "20,000"; None or
empty: the AGENT_* default), `risk_level`, `schedule`
(a standard crontab expression, see agent_core/schedules.py; empty or None: no schedule),
`timezone` and `enabled`.

A form that picks the schedule in plain words gives `schedule_preset` (a key of
agent_core.schedules.SCHEDULE_PRESETS) and the parameters that preset asks for,
`schedule_hour`, `schedule_minute`, `schedule_weekday`, `schedule_day` (each a whole number,
or its text as typed; None or empty: the preset's default), in place of `schedule`: each
wrong parameter is named with its own sentence, as a budget is.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agent_core.errors import InvalidFields
from agent_core.models import Budget, Objective, ObjectiveSpec
from agent_core.numbers import typed_whole_number
from agent_core.render import (
    OBJECTIVE_FIELD_NAMES,
    field_problems,
    unknown_tool_problem,
    whole_number_problem,
)
from agent_core.render.text import as_sentence
from agent_core.schedules import (
    cron_for,
    next_runs,
    preset_parameter,
    preset_parameter_bounds,
    schedule_preset,
)
from agent_core.store import Store

BUDGET_FIELDS = ("max_steps", "max_tool_calls", "max_duration_ms", "max_tokens")
OBJECTIVE_FIELDS = (
    "title",
    "description",
    "tools_allowed",
    *BUDGET_FIELDS,
    "risk_level",
    "schedule",
    "timezone",
    "enabled",
)
SCHEDULE_PRESET_FIELDS = (
    "schedule_preset",
    "schedule_hour",
    "schedule_minute",
    "schedule_weekday",
    "schedule_day",
)


def objective_fields(objective: Objective) -> dict[str, Any]:
    """The objective as the flat fields an edit form starts from."""
    budget = objective.budget
    return {
        "title": objective.title,
        "description": objective.description,
        "tools_allowed": list(objective.tools_allowed),
        **{name: getattr(budget, name) for name in BUDGET_FIELDS},
        "risk_level": objective.risk_level.value,
        "schedule": objective.schedule,
        "timezone": objective.timezone,
        "enabled": objective.enabled,
    }


# A whole number as people type it: digits, or digits grouped in threes by commas ("20,000").
_WHOLE_NUMBER = re.compile(r"[+-]?(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)")


def budget_bounds(name: str) -> tuple[int, int]:
    """The lowest and highest value of a budget field, as the Budget model declares them."""
    low, high = 0, 0
    for constraint in Budget.model_fields[name].metadata:
        low = getattr(constraint, "ge", low)
        high = getattr(constraint, "le", high)
    return low, high


def budget_value(name: str, value: object) -> int | None:
    """A budget field as given (a number, or text as typed in a form or on a command line)
    as the whole number stored, None (the AGENT_* default) when empty; ValueError with the
    field's sentence otherwise. Nothing is rounded or clipped: a form must never save a
    value other than the one the admin typed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    low, high = budget_bounds(name)
    number = typed_whole_number(value, _WHOLE_NUMBER, low, high)
    if number is None:
        raise ValueError(whole_number_problem(OBJECTIVE_FIELD_NAMES[name], low, high))
    return number


def objective_spec(
    fields: Mapping[str, Any], *, known_tools: Collection[str] | None = None
) -> ObjectiveSpec:
    """The validated objective for `fields`, or InvalidFields naming each wrong field with
    its sentence (worded in agent_core.render, so the CLI and the dashboard say the same).

    With `known_tools` (the registry's names), a tool that does not exist is refused now,
    with the list of tools that do, rather than refused at run time.
    """
    unknown = sorted(set(fields) - {*OBJECTIVE_FIELDS, *SCHEDULE_PRESET_FIELDS})
    if unknown:
        raise InvalidFields({unknown[0]: f"{unknown[0]} is not a field of an objective"})
    document: dict[str, Any] = {
        name: fields[name]
        for name in OBJECTIVE_FIELDS
        if name in fields and name not in BUDGET_FIELDS
    }
    problems: dict[str, str] = {}
    if fields.get("schedule_preset"):
        document["schedule"] = _preset_schedule(fields, problems)
    budget: dict[str, int] = {}
    for name in BUDGET_FIELDS:
        try:
            number = budget_value(name, fields.get(name))
        except ValueError as exc:
            problems[name] = str(exc)
        else:
            if number is not None:
                budget[name] = number
    document["budget"] = budget
    tools = document.get("tools_allowed")
    if isinstance(tools, str):
        document["tools_allowed"] = [name.strip() for name in tools.split(",") if name.strip()]
    if isinstance(document.get("schedule"), str) and not document["schedule"].strip():
        document["schedule"] = None
    spec: ObjectiveSpec | None = None
    try:
        spec = ObjectiveSpec.model_validate(document)
    except ValidationError as exc:
        problems |= field_problems(exc, OBJECTIVE_FIELD_NAMES)
    names = document.get("tools_allowed") or []
    if known_tools is not None and "tools_allowed" not in problems and isinstance(names, list):
        missing = [name for name in map(str.strip, map(str, names)) if name not in known_tools]
        if missing:
            problems["tools_allowed"] = unknown_tool_problem(missing[0], known_tools)
    if problems or spec is None:  # every problem at once, in the order of the fields
        order = {
            name: index for index, name in enumerate((*OBJECTIVE_FIELDS, *SCHEDULE_PRESET_FIELDS))
        }
        ranked = sorted(problems.items(), key=lambda item: order.get(item[0], len(order)))
        raise InvalidFields(dict(ranked))
    return spec


def _preset_schedule(fields: Mapping[str, Any], problems: dict[str, str]) -> str | None:
    """The expression of the preset in `fields` with its parameters as typed, or None with
    what is wrong added to `problems`, each parameter with its own sentence ("Minutes past the
    hour must be a whole number from 0 to 59.")."""
    try:
        preset = schedule_preset(str(fields["schedule_preset"]))
    except ValueError as exc:
        problems["schedule_preset"] = as_sentence(str(exc))
        return None
    parameters: dict[str, int] = {}
    for name in preset.parameters:
        field = f"schedule_{name}"
        try:
            parameters[name] = preset_parameter(name, fields.get(field))
        except ValueError:
            low, high = preset_parameter_bounds(name)
            problems[field] = whole_number_problem(OBJECTIVE_FIELD_NAMES[field], low, high)
    if len(parameters) < len(preset.parameters):
        return None
    return cron_for(preset.key, **parameters)


def objective_problems(
    fields: Mapping[str, Any], *, known_tools: Collection[str] | None = None
) -> dict[str, str]:
    """What is wrong with `fields`, each field with its sentence; empty when they make a
    valid objective. A form checks what the admin typed with it, without saving."""
    try:
        objective_spec(fields, known_tools=known_tools)
    except InvalidFields as exc:
        return exc.problems
    return {}


def create_objective(
    store: Store, fields: Mapping[str, Any], *, known_tools: Collection[str] | None = None
) -> Objective:
    return store.create_objective(objective_spec(fields, known_tools=known_tools))


def update_objective(
    store: Store,
    objective_id: str,
    changes: Mapping[str, Any],
    *,
    known_tools: Collection[str] | None = None,
) -> Objective:
    """Apply `changes` (only the fields given; a budget field set to None goes back to the
    default) to the objective. Workers pick the change up without a restart."""
    current = store.get_objective(objective_id)
    fields = {**objective_fields(current), **changes}
    return store.update_objective(current.id, objective_spec(fields, known_tools=known_tools))


def upcoming_runs(objective: Objective, *, after: datetime, count: int = 3) -> list[datetime]:
    """When workers will next start the objective on their own, in UTC: none without a
    schedule, and none while it is disabled (its schedule does not fire then)."""
    if not (objective.schedule and objective.enabled):
        return []
    return next_runs(objective.schedule, objective.timezone, after=after, count=count)
