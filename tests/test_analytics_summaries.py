"""Closed days summarized for analytics (agent_core.analytics.daybook), on both backends: a
range read from its summarized days gives exactly the figures read from its runs, whatever
its edges and objective; a day with a run still going waits; a summarized day is priced
when read; maintenance summarizes before the prune, and says so."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from agent_core import analytics
from agent_core.analytics.daybook import stored_and_rest, summarize_closed_days
from agent_core.analytics.filters import Scope
from agent_core.maintenance import run_maintenance
from agent_core.models import RunChanges, RunStatus, StopReason, ToolCallStatus
from agent_core.notify import Notifier
from agent_core.store.schema import day_summaries
from tests.analytics_support import OWNER, SINCE, UNTIL, Answer, Invalid, Recorder
from tests.support import KEY, agent_settings, make_objective

PRICES = {"model-a": (1.0, 2.0), "model-b": (0.5, 0.5)}
OTHER_PRICES = {"model-a": (3.0, 3.0), "model-b": (0.5, 0.5)}
LATER = UNTIL + timedelta(days=2)  # every day of the range is over
CLOSED = ["2026-11-05", "2026-11-04", "2026-11-03", "2026-11-02"]  # by LATER, newest first

# The order of these tables is their meaning (dearest first, slowest first); the others are
# compared sorted by their key.
ORDERED = ("slowest_runs", "most_expensive_runs", "run_distributions")
KEYS = {
    "runs_by_day": "day",
    "stop_reasons": "stop_reason",
    "models": "model",
    "cost_by_objective": "objective_id",
    "cost_by_day": "day",
    "tools": "tool",
    "refusals": "tool",
    "approvals_by_tool": "tool",
    "budgets_exhausted": "objective_id",
}


def end(store, run, status=RunStatus.COMPLETED, stop_reason=StopReason.DONE):
    """Take a queued run (after its approval's decision) to its end."""
    store.claim_run(run.id, owner=OWNER, lease_s=3600)
    store.update_run(
        run.id, RunChanges(owner=OWNER, status=status, stop_reason=stop_reason, active_ms=700)
    )


@pytest.fixture
def days(store, clock):
    """Runs over three days of two objectives, every one ended by LATER."""
    leads = make_objective(store, title="Weekly leads")
    invoices = make_objective(store, title="Invoices")
    record = Recorder(store, clock)
    for day in range(3):
        morning = SINCE + timedelta(days=day, hours=3)
        record.at(morning)
        record.run(
            leads.id,
            answers=(
                Answer("model-a", 100 + day, 50, 100 + 37 * day, "count_database"),
                Answer("model-a", 200, 50 + day, 300),
            ),
            active_ms=1000 + day,
        )
        record.run(
            leads.id,
            answers=(
                Invalid("model-a", 50, 5, 50),
                Answer("model-a", 100, 10, 200 + day, "count_database", ToolCallStatus.FAILED),
                Answer("model-b", 300, 30, 400, "count_database", fallback_from=("model-a",)),
            ),
            status=RunStatus.FAILED,
            stop_reason=StopReason.BUDGET_STEPS,
            active_ms=3000 - day,
        )
        record.run(
            invoices.id,
            answers=(
                Answer("model-b", 1000, 100, 500, "send_email", ToolCallStatus.DENIED),
                Answer("unpriced-model", 50, 10, 100 * day),
            ),
            active_ms=2000,
        )
        record.at(morning + timedelta(hours=9))  # the afternoon
        record.run(
            invoices.id, status=RunStatus.FAILED, stop_reason=StopReason.LLM_ERROR, active_ms=500
        )
        approved = record.paused(invoices.id, model="model-b")
        rejected = record.paused(leads.id)
        record.at(morning + timedelta(hours=9, minutes=10 + day))
        store.decide_approval(
            approved.approval.id,
            approve=True,
            by="ada",
            approved_args={"to": "bob@example.com"},
            signing_key=KEY,
        )
        store.decide_approval(rejected.approval.id, approve=False, by="ada", signing_key=KEY)
        end(store, approved.run)
        end(store, rejected.run, RunStatus.CANCELLED, StopReason.CANCELLED)
    record.at(LATER)
    return {"leads": leads, "invoices": invoices}


SCOPES = {
    "the whole range": {"since": SINCE, "until": UNTIL},
    "from mid-morning, open-ended": {"since": SINCE + timedelta(hours=5)},
    "one objective, ending mid-day": {"since": SINCE, "until": UNTIL - timedelta(hours=14)},
    "over a day without runs": {"since": SINCE, "until": LATER},
}


def every_figure(store, scope, prices=PRICES):
    return analytics.analyze(store, **scope, prices=prices)


def assert_same_figures(found, expected):
    assert found.headline.keys() == expected.headline.keys()
    for name, value in expected.headline.items():
        if isinstance(value, float) and not math.isnan(value):
            assert found.headline[name] == pytest.approx(value), name
        else:
            assert found.headline[name] == value, name
    for name, table in expected.tables.items():
        got = found.tables[name]
        if name not in ORDERED and name in KEYS and not table.empty:
            table = table.sort_values(KEYS[name], ignore_index=True)
            got = got.sort_values(KEYS[name], ignore_index=True)
        pd.testing.assert_frame_equal(
            got.reset_index(drop=True),
            table.reset_index(drop=True),
            check_dtype=False,
            rtol=1e-9,
            obj=name,
        )


def summaries_read(store) -> int:
    with store.reading() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(day_summaries)).scalar_one()


@pytest.mark.parametrize("name", list(SCOPES))
def test_summarized_days_give_the_figures_of_their_runs(store, days, name):
    scope = dict(SCOPES[name])
    if name.startswith("one objective"):
        scope["objective_id"] = days["invoices"].id
    from_runs = every_figure(store, scope)
    assert from_runs.headline["runs"] > 0

    written = summarize_closed_days(store)

    assert written == CLOSED  # the most recent first; the last one had no run
    assert summaries_read(store) == 4  # a row per day
    seen: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    assert_same_figures(every_figure(store, scope), from_runs)
    assert any("app_agent_day_summaries.figures" in statement for statement in seen)
    with store.reading() as conn:  # read from the summaries, not passed over
        found = Scope.of(scope["since"], scope.get("until"), scope.get("objective_id"))
        assert stored_and_rest(conn, found, store.now()) is not None


def test_a_day_with_a_run_still_going_waits_for_it(store, days, clock):
    record = Recorder(store, clock)
    record.at(SINCE + timedelta(days=1, hours=20))
    going = record.run(days["leads"].id, status=None, active_ms=10)
    record.at(LATER)

    assert summarize_closed_days(store) == [*CLOSED[:2], "2026-11-02"]
    from_runs = every_figure(store, SCOPES["the whole range"])
    store.update_run(
        going.id, RunChanges(owner=OWNER, status=RunStatus.FAILED, stop_reason="worker_lost")
    )
    assert summarize_closed_days(store) == ["2026-11-03"]
    assert summarize_closed_days(store) == []  # nothing left to do
    after = every_figure(store, SCOPES["the whole range"])
    assert after.headline["failed"] == from_runs.headline["failed"] + 1
    assert after.headline["in_progress"] == from_runs.headline["in_progress"] - 1


def test_a_summarized_day_is_priced_when_read(store, days):
    scope = SCOPES["the whole range"]
    under_other_prices = every_figure(store, scope, OTHER_PRICES)
    summarize_closed_days(store)

    assert_same_figures(every_figure(store, scope, OTHER_PRICES), under_other_prices)
    assert every_figure(store, scope, OTHER_PRICES).headline["cost_usd"] != pytest.approx(
        every_figure(store, scope, PRICES).headline["cost_usd"]
    )
    assert summarize_closed_days(store) == []  # nothing to summarize again


def test_a_pass_summarizes_a_bounded_number_of_days(store, days):
    assert summarize_closed_days(store, limit=3) == CLOSED[:3]
    assert summarize_closed_days(store, limit=3) == CLOSED[3:]


def test_maintenance_summarizes_closed_days_and_says_so(store, days):
    settings = agent_settings(agent_model_prices=PRICES)
    report = run_maintenance(store, settings, Notifier(store, settings))

    assert report.days_summarized == CLOSED
    assert "days summarized:       4" in report.lines()


def test_a_damaged_summary_is_passed_over_for_the_runs(store, days):
    scope = SCOPES["the whole range"]
    from_runs = every_figure(store, scope)
    summarize_closed_days(store)
    with store.engine.begin() as conn:
        conn.execute(day_summaries.update().values(samples=b"\x00" * 12))

    assert_same_figures(every_figure(store, scope), from_runs)


def test_an_ended_run_without_a_stop_reason_counts_as_ended(store, days, clock):
    record = Recorder(store, clock)
    record.at(SINCE + timedelta(hours=20))
    record.run(days["leads"].id, answers=(Answer("model-a", 1, 1, 1),), stop_reason=None)
    record.at(LATER)
    scope = SCOPES["the whole range"]
    from_runs = every_figure(store, scope)
    summarize_closed_days(store)

    assert_same_figures(every_figure(store, scope), from_runs)


def test_a_day_is_summarized_before_its_events_are_pruned(store, days, clock):
    """Invalid replies, fallbacks and refusals come from ledger events, which the retention
    prune removes: maintenance summarizes first, and the day keeps them."""
    scope = SCOPES["the whole range"]
    before_the_prune = every_figure(store, scope)
    settings = agent_settings(agent_model_prices=PRICES)
    first = run_maintenance(store, settings, Notifier(store, settings))  # the day after
    clock.current = LATER + timedelta(days=40)  # every event is past its retention
    report = run_maintenance(store, settings, Notifier(store, settings))

    assert first.days_summarized == CLOSED
    assert (first.events_pruned, len(report.days_summarized)) == (0, 31)  # the newest

    assert report.events_pruned > 0
    models = every_figure(store, scope).tables["models"].set_index("model")
    assert models.loc["model-a", "invalid_replies"] == 3  # one a day, from pruned events
    assert models.loc["model-b", "fallbacks"] == 3
    assert_same_figures(every_figure(store, scope), before_the_prune)


def test_a_row_stamped_by_a_clock_running_ahead_still_counts(store, days, clock):
    record = Recorder(store, clock)
    record.at(SINCE + timedelta(days=1, hours=3))
    ahead = record.run(days["leads"].id, status=None)
    clock.current = SINCE + timedelta(days=1, hours=5, minutes=30)  # a worker 2.5 h ahead
    record._step(ahead.id, Answer("model-b", 700, 70, 900, "count_database"))
    clock.current = SINCE + timedelta(days=1, hours=3, minutes=5)
    store.update_run(
        ahead.id, RunChanges(owner=OWNER, status=RunStatus.COMPLETED, stop_reason="done")
    )
    record.at(LATER)
    scope = SCOPES["the whole range"]
    from_runs = every_figure(store, scope)
    summarize_closed_days(store)

    assert_same_figures(every_figure(store, scope), from_runs)


def test_a_range_mostly_unsummarized_is_read_from_its_runs(store, days):
    assert summarize_closed_days(store, limit=2) == CLOSED[:2]  # one day of the range's three
    seen: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    every_figure(store, SCOPES["the whole range"])

    assert not any("app_agent_day_summaries.figures" in statement for statement in seen)
