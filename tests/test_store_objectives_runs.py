"""The store keeps objectives and runs on both backends, as the CLI and dashboard read them."""

from __future__ import annotations

import pytest

from agent_core.errors import NotFound
from agent_core.models import Budget, RiskLevel, RunStatus, RunTrigger
from tests.support import make_objective


def test_objective_round_trips_with_seed_budget_keys(store):
    created = make_objective(
        store,
        tools_allowed=["read_database", "count_database"],
        budget=Budget(max_steps=5, max_duration_ms=60_000),
        risk_level="low",
        schedule="0 8 * * mon",
        timezone="Europe/Paris",
    )
    loaded = store.get_objective(created.id)
    assert loaded == created
    assert loaded.tools_allowed == ["read_database", "count_database"]
    assert loaded.budget.as_document() == {"maxSteps": 5, "maxDurationMs": 60_000}
    assert loaded.risk_level is RiskLevel.LOW
    assert loaded.schedule == "0 8 * * mon"
    assert [item.id for item in store.list_objectives()] == [created.id]


def test_runs_are_queued_numbered_and_listed_newest_first(store):
    objective = make_objective(store)
    first = store.create_run(objective.id)
    second = store.create_run(objective.id, trigger=RunTrigger.SCHEDULE)
    assert (first.run_number, second.run_number) == (1, 2)
    assert first.status is RunStatus.QUEUED
    assert second.trigger is RunTrigger.SCHEDULE
    assert [run.id for run in store.list_runs()] == [second.id, first.id]
    assert [run.id for run in store.list_runs(objective_id=objective.id, status="queued")] == [
        second.id,
        first.id,
    ]
    assert store.list_runs(status=RunStatus.COMPLETED) == []
    assert store.get_objective(objective.id).last_run_number == 2


def test_a_queued_run_is_in_the_ledger(store):
    objective = make_objective(store)
    run = store.create_run(objective.id)
    detail = store.run_detail(run.id)
    assert [event.event_type for event in detail.events] == ["run_queued"]
    assert detail.events[0].data == {
        "objective_id": objective.id,
        "run_number": 1,
        "trigger": "manual",
        "slot": None,
    }


@pytest.mark.parametrize("bad_id", ["nope", "", "123", "'; drop table app_agent_runs; --"])
def test_unknown_or_malformed_ids_are_not_found(store, bad_id):
    with pytest.raises(NotFound, match="not a valid run id"):
        store.get_run(bad_id)
    with pytest.raises(NotFound, match="not a valid objective id"):
        store.create_run(bad_id)


def test_an_id_that_exists_nowhere_is_named(store):
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFound, match=f"no objective has id {missing}"):
        store.get_objective(missing)
    with pytest.raises(NotFound, match=f"no run has id {missing}"):
        store.run_detail(missing)
