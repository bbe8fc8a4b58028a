"""Creating and changing objectives from plain fields: the one place both the CLI and the
dashboard go through, so a rule (a valid schedule, a known tool, a budget of at least one
step) holds whichever face the admin uses.

Fields are flat, as a form or a command line has them: `title`, `description`,
`tools_allowed` (a list, or names separated by commas), `max_steps`, `max_tool_calls`,
`max_duration_ms`, `max_tokens` (None: the AGENT_* default), `risk_level`, `schedule`
(a standard crontab expression, see agent_core/schedules.py; empty or None: no schedule),
`timezone` and `enabled`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agent_core.errors import InvalidFields
from agent_core.models import Objective, ObjectiveSpec
from agent_core.render import field_problems
from agent_core.schedules import next_runs
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


def objective_spec(
    fields: Mapping[str, Any], *, known_tools: Collection[str] | None = None
) -> ObjectiveSpec:
    """The validated objective for `fields`, or InvalidFields naming each wrong field.

    With `known_tools` (the registry's names), a tool that does not exist is refused now,
    with the list of tools that do, rather than refused at run time.
    """
    unknown = sorted(set(fields) - set(OBJECTIVE_FIELDS))
    if unknown:
        raise InvalidFields({unknown[0]: f"{unknown[0]} is not a field of an objective"})
    document: dict[str, Any] = {
        name: fields[name]
        for name in OBJECTIVE_FIELDS
        if name in fields and name not in BUDGET_FIELDS
    }
    document["budget"] = {
        name: fields[name] for name in BUDGET_FIELDS if fields.get(name) is not None
    }
    tools = document.get("tools_allowed")
    if isinstance(tools, str):
        document["tools_allowed"] = [name.strip() for name in tools.split(",") if name.strip()]
    if isinstance(document.get("schedule"), str) and not document["schedule"].strip():
        document["schedule"] = None
    try:
        spec = ObjectiveSpec.model_validate(document)
    except ValidationError as exc:
        raise InvalidFields(field_problems(exc)) from None
    if known_tools is not None:
        missing = [name for name in spec.tools_allowed if name not in known_tools]
        if missing:
            raise InvalidFields(
                {
                    "tools_allowed": f"unknown tool {missing[0]!r}; the tools are: "
                    + ", ".join(sorted(known_tools))
                }
            )
    return spec


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
