"""Objectives: what an admin asks the agent to do, its tools, budgets and schedule.

The objective also counts its runs (`last_run_number`): runs.py numbers a new run by one
atomic UPDATE ... RETURNING on it."""

from __future__ import annotations

from typing import Any

from agent_core.errors import NotFound
from agent_core.models import (
    Objective,
    ObjectiveSpec,
)
from agent_core.store.base import (
    StoreBase,
    as_objective,
    new_id,
    parse_id,
)
from agent_core.store.schema import (
    objectives,
)


class ObjectiveStore(StoreBase):
    """Creating, reading and editing objectives."""

    def create_objective(self, spec: ObjectiveSpec) -> Objective:
        now = self.now()
        values = {
            "id": new_id(),
            **_objective_values(spec),
            "last_run_number": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self._transaction(write=True) as conn:
            row = conn.execute(objectives.insert().values(values).returning(objectives)).one()
        return as_objective(row)

    def get_objective(self, objective_id: str) -> Objective:
        key = parse_id(objective_id, "objective")
        with self._transaction(write=False) as conn:
            row = conn.execute(objectives.select().where(objectives.c.id == key)).one_or_none()
        if row is None:
            raise NotFound(f"no objective has id {objective_id}")
        return as_objective(row)

    def update_objective(self, objective_id: str, spec: ObjectiveSpec) -> Objective:
        """Replace the objective's editable fields; schedules take effect without a restart
        because workers read them on every tick."""
        key = parse_id(objective_id, "objective")
        with self._transaction(write=True) as conn:
            row = conn.execute(
                objectives.update()
                .where(objectives.c.id == key)
                .values(**_objective_values(spec), updated_at=self.now())
                .returning(objectives)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no objective has id {objective_id}")
        return as_objective(row)

    def list_objectives(self) -> list[Objective]:
        query = objectives.select().order_by(objectives.c.created_at, objectives.c.id)
        with self._transaction(write=False) as conn:
            return [as_objective(row) for row in conn.execute(query)]


def _objective_values(spec: ObjectiveSpec) -> dict[str, Any]:
    return {
        "title": spec.title,
        "description": spec.description,
        "tools_allowed": list(spec.tools_allowed),
        "budget": spec.budget.as_document(),
        "risk_level": spec.risk_level,
        "schedule": spec.schedule,
        "timezone": spec.timezone,
        "enabled": spec.enabled,
    }
