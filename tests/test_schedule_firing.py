"""The worker fires recurring objectives on standard crontab: `0 9 * * 1-5` at 09:00 in the
objective's time zone Monday to Friday and never at the weekend, Sunday as 0, 7 or sun, a
fixed time once on the night the clocks go back, and one unreadable stored schedule does not
stop the others. The store's clock is a ManualClock the test moves."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from agent_core.models import RunStatus, RunTrigger
from agent_core.objectives import upcoming_runs
from agent_core.runs import cancel_run
from agent_core.runtime import Runtime
from agent_core.store.schema import objectives
from agent_core.tools import ToolRegistry
from agent_core.worker import Worker
from tests.support import agent_settings, make_objective

PARIS = ZoneInfo("Europe/Paris")


def _worker(store):
    runtime = Runtime(
        settings=agent_settings(),
        store=store,
        tools=ToolRegistry(),
        llm=None,
        llm_problem="no LLM is configured",
    )
    return Worker(runtime)


def _fire(worker, store):
    """One pass of the worker's schedule job; each run it queues is cancelled at once, so
    that the next slot is not skipped as "previous run still active"."""
    fired = worker.fire_schedules()
    for run in fired:
        assert run.trigger is RunTrigger.SCHEDULE
        if run.status is RunStatus.QUEUED:
            cancel_run(store, run.id, by="test")
    return fired


def test_a_weekday_schedule_fires_monday_to_friday_in_the_objectives_time_zone(store, clock):
    clock.current = datetime(2026, 11, 1, 12, tzinfo=UTC)  # a Sunday
    titles = {
        "weekdays": "0 9 * * 1-5",
        "sunday as 0": "0 9 * * 0",
        "sunday as 7": "0 9 * * 7",
        "sunday by name": "0 9 * * sun",
    }
    for title, schedule in titles.items():
        make_objective(store, title=title, schedule=schedule, timezone="Europe/Paris")
    worker = _worker(store)
    fired_on: dict[str, list[str]] = {title: [] for title in titles}
    names = {objective.id: objective.title for objective in store.list_objectives()}
    for day in range(2, 10):  # Monday 2 to Monday 9 November, at 09:30 in Paris
        clock.current = datetime(2026, 11, day, 9, 30, tzinfo=PARIS).astimezone(UTC)
        for run in _fire(worker, store):
            slot = run.schedule_slot.astimezone(PARIS)
            assert (slot.date().day, slot.hour, slot.minute) == (day, 9, 0)
            fired_on[names[run.objective_id]].append(f"{slot:%a}")
        assert _fire(worker, store) == []  # a slot fires once
    assert fired_on == {
        "weekdays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Mon"],
        "sunday as 0": ["Sun"],
        "sunday as 7": ["Sun"],
        "sunday by name": ["Sun"],
    }


def test_nothing_fires_before_the_local_time(store, clock):
    clock.current = datetime(2026, 11, 1, 12, tzinfo=UTC)
    make_objective(store, schedule="0 9 * * 1-5", timezone="Europe/Paris")
    worker = _worker(store)
    clock.current = datetime(2026, 11, 2, 8, 59, tzinfo=PARIS).astimezone(UTC)
    assert _fire(worker, store) == []
    clock.advance(minutes=1)
    (run,) = _fire(worker, store)
    assert run.schedule_slot == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # 09:00 CET


@pytest.mark.timeout(60)
def test_the_night_the_clocks_go_back_a_fixed_time_fires_once(store, clock):
    clock.current = datetime(2026, 10, 24, 12, tzinfo=UTC)
    make_objective(store, schedule="30 2 * * *", timezone="Europe/Paris")
    worker = _worker(store)
    clock.current = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)  # 02:45 CEST
    (first,) = _fire(worker, store)
    assert first.schedule_slot == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    clock.current = datetime(2026, 10, 25, 1, 45, tzinfo=UTC)  # 02:45 again, CET
    assert _fire(worker, store) == []  # it used to loop here forever
    clock.current = datetime(2026, 10, 26, 1, 45, tzinfo=UTC)
    (next_day,) = _fire(worker, store)
    assert next_day.schedule_slot == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_an_unreadable_stored_schedule_is_logged_once_and_the_others_fire(store, clock, caplog):
    broken = make_objective(store, title="broken", schedule="0 9 * * *")
    fine = make_objective(store, title="fine", schedule="*/5 * * * *")
    with store.engine.begin() as conn:  # accepted by an older version, as APScheduler reads it
        conn.execute(
            sa.update(objectives)
            .where(objectives.c.id == broken.id)
            .values(schedule="0 9 last * *")
        )
    worker = _worker(store)
    caplog.set_level(logging.WARNING, logger="agent_core.worker")
    clock.advance(minutes=6)
    (run,) = _fire(worker, store)
    assert run.objective_id == fine.id
    clock.advance(minutes=5)
    (again,) = _fire(worker, store)
    assert again.objective_id == fine.id
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'broken' does not fire until its schedule is fixed" in warnings[0]
    assert "the day field takes 1 to 31, not 'last'" in warnings[0]


def test_the_next_runs_shown_are_the_slots_the_worker_fires(store, clock):
    clock.current = datetime(2026, 11, 1, 12, tzinfo=UTC)
    objective = make_objective(store, schedule="0 9 * * mon-fri/2", timezone="Europe/Paris")
    shown = upcoming_runs(objective, after=store.now())
    worker = _worker(store)
    fired = []
    while len(fired) < 3:
        clock.advance(hours=6)
        fired += [run.schedule_slot for run in _fire(worker, store)]
        assert clock.current < datetime(2026, 11, 10, tzinfo=UTC)
    assert fired == shown
    assert [f"{slot.astimezone(PARIS):%a %H:%M}" for slot in shown] == [
        "Mon 09:00",
        "Wed 09:00",
        "Fri 09:00",
    ]
