"""Run analytics (agent_core.analytics) on both backends, from runs with known numbers: each
aggregate, the percentiles (the same value on SQLite and PostgreSQL), the date and objective
filters, the cost of priced and unpriced models, `report`, `report_text` and `parse_since`."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from agent_core import analytics
from agent_core.analytics.runs import _run_distributions
from agent_core.errors import InvalidInput, NotFound
from agent_core.models import RunStatus, StopReason, ToolCallStatus
from tests.analytics_support import SINCE, UNTIL, Answer, Invalid, Recorder
from tests.support import KEY, make_objective

PRICES = {"model-a": (1.0, 2.0), "model-b": (0.5, 0.5)}  # USD per 1,000 tokens
DAY_1, DAY_2, DAY_3 = (SINCE + timedelta(days=n, hours=9) for n in range(3))


@pytest.fixture
def week(store, clock):
    """Nine runs in [SINCE, UNTIL) of two objectives, one before and one after the range."""
    leads = make_objective(store, title="Weekly leads")
    invoices = make_objective(store, title="Invoices")
    record = Recorder(store, clock)
    runs = {}

    record.at(SINCE - timedelta(hours=1))  # before the range: counted nowhere
    record.run(leads.id, answers=(Answer("model-a", 10_000, 1_000, 9_000),), active_ms=99_000)

    record.at(DAY_1)
    runs["r1"] = record.run(
        leads.id,
        answers=(
            Answer("model-a", 100, 50, 100, "count_database"),
            Answer("model-a", 200, 50, 300),
        ),
        active_ms=1000,
    )
    runs["r2"] = record.run(
        leads.id,
        answers=(
            Invalid("model-a", 50, 5, 50),
            Answer("model-a", 100, 10, 200, "count_database", ToolCallStatus.FAILED),
            Answer("model-b", 300, 30, 400, "count_database", fallback_from=("model-a",)),
        ),
        status=RunStatus.FAILED,
        stop_reason=StopReason.BUDGET_STEPS,
        active_ms=3000,
    )
    runs["r3"] = record.run(
        invoices.id,
        answers=(
            Answer("model-b", 1000, 100, 500, "send_email", ToolCallStatus.DENIED),
            Answer("model-b", 50, 10, 100),
        ),
        active_ms=2000,
    )

    record.at(DAY_2)
    runs["r4"] = record.run(
        invoices.id, status=RunStatus.FAILED, stop_reason=StopReason.LLM_ERROR, active_ms=500
    )
    runs["r5"] = record.run(
        leads.id,
        answers=(Answer("unpriced-model", 400, 40, 600, "read_database"),),
        status=RunStatus.CANCELLED,
        stop_reason=StopReason.CANCELLED,
        active_ms=4000,
    )
    runs["r6"] = record.paused(leads.id, expires_in_h=72).run  # still waiting at the end
    runs["r7"] = store.schedule_run(leads.id, DAY_2)  # skipped: r6 is still active
    assert runs["r7"].status is RunStatus.SKIPPED

    record.at(DAY_3)
    changed = record.paused(invoices.id, model="model-b")
    rejected = record.paused(leads.id)
    runs["r8"], runs["r9"] = changed.run, rejected.run
    record.at(DAY_3 + timedelta(minutes=10))
    store.decide_approval(
        changed.approval.id,
        approve=True,
        by="ada",
        approved_args={"to": "bob@example.com"},
        signing_key=KEY,
    )
    record.at(DAY_3 + timedelta(minutes=30))
    store.decide_approval(
        rejected.approval.id, approve=False, by="ada", reason="no", signing_key=KEY
    )

    record.at(UNTIL + timedelta(hours=10))  # after the range: counted nowhere
    record.run(leads.id, answers=(Answer("model-a", 10_000, 1_000, 9_000),), active_ms=99_000)
    return {"leads": leads, "invoices": invoices, "runs": runs}


def figures(store, **filters):
    return analytics.analyze(store, since=SINCE, until=UNTIL, prices=PRICES, **filters)


def rows(frame, key):
    return {row[key]: row for row in frame.to_dict(orient="records")}


def test_runs_per_day_by_outcome_and_the_success_rate(store, week):
    by_day = analytics.runs_by_day(store, since=SINCE, until=UNTIL)
    assert [day.strftime("%Y-%m-%d") for day in by_day["day"]] == [
        "2026-11-02",
        "2026-11-03",
        "2026-11-04",
    ]
    counts = ["completed", "failed", "cancelled", "skipped", "in_progress", "runs"]
    assert by_day[counts].values.tolist() == [
        [2, 1, 0, 0, 0, 3],
        [0, 1, 1, 1, 1, 4],
        [0, 0, 0, 0, 2, 2],
    ]
    assert by_day["success_rate"].tolist()[:2] == pytest.approx([2 / 3, 0.0])
    assert math.isnan(by_day["success_rate"].iloc[2])  # nothing ended that day

    head = figures(store).headline
    assert {key: head[key] for key in counts[:-1]} == {
        "completed": 2,
        "failed": 2,
        "cancelled": 1,
        "skipped": 1,
        "in_progress": 3,
    }
    assert head["runs"] == 9
    assert head["ended"] == 5
    assert head["success_rate"] == pytest.approx(0.4)
    assert head["completed_with_failed_calls"] == 1  # r3's refused call
    assert head["tokens"] == 2825  # the runs' counters: invalid replies included
    assert head["approvals_waiting"] == 1


def test_stop_reasons_come_with_their_sentence(store, week):
    reasons = analytics.stop_reasons(store, since=SINCE, until=UNTIL)
    assert reasons["stop_reason"].tolist()[0] == "done"
    found = rows(reasons, "stop_reason")
    assert {reason: row["runs"] for reason, row in found.items()} == {
        "done": 2,
        "budget_steps": 1,
        "cancelled": 1,
        "llm_error": 1,
        "previous_run_active": 1,
    }
    assert found["done"]["share"] == pytest.approx(2 / 6)
    assert found["budget_steps"]["sentence"] == (
        "The run used all the steps its budget allows before finishing."
    )


def test_per_run_distributions_median_p90_and_mean(store, week):
    spread = rows(analytics.run_distributions(store, since=SINCE, until=UNTIL), "measure")
    # the five runs that ended: r1 to r5
    assert {name: row["runs"] for name, row in spread.items()} == dict.fromkeys(
        ["steps", "tool_calls", "duration_ms", "tokens"], 5
    )
    expected = {  # percentile_cont: linear between the two nearest ranks
        "steps": (2, 2, 1.4),  # 0 1 2 2 2
        "tool_calls": (1, 1.6, 1.0),  # 0 1 1 1 2
        "duration_ms": (2000, 3600, 2100),  # 500 1000 2000 3000 4000
        "tokens": (440, 894, 499),  # 0 400 440 495 1160
    }
    for name, (median, p90, mean) in expected.items():
        row = spread[name]
        assert (row["median"], row["p90"], row["mean"]) == pytest.approx((median, p90, mean))


def test_percentiles_are_percentile_cont_on_both_backends(store, clock):
    objective = make_objective(store)
    record = Recorder(store, clock)
    record.at(DAY_1)
    for active_ms in (700, 100, 1000, 300, 900, 200, 600, 400, 800, 500):
        record.run(objective.id, active_ms=active_ms)
    duration = rows(analytics.run_distributions(store, since=SINCE), "measure")["duration_ms"]
    assert duration["median"] == pytest.approx(550)  # between the 5th and 6th values
    assert duration["p90"] == pytest.approx(910)  # 9.1th value: 900 + 0.1 x 100
    scope = analytics.Scope.of(SINCE, None, None)
    with store.reading() as conn:  # the window-function form, on this backend too
        ranked = _run_distributions(conn, scope, portable=True)
        native = _run_distributions(conn, scope)
    pd.testing.assert_frame_equal(ranked, native)


def test_per_model_calls_tokens_latency_errors_fallbacks_and_cost(store, week):
    by_model = rows(figures(store).tables["models"], "model")
    a, b = by_model["model-a"], by_model["model-b"]
    assert (a["calls"], a["invalid_replies"], a["errors"], a["fallbacks"]) == (5, 1, 1, 0)
    assert (a["prompt_tokens"], a["completion_tokens"], a["tokens"]) == (650, 135, 785)
    assert (a["latency_p50_ms"], a["latency_p90_ms"]) == pytest.approx((100, 250))
    assert a["cost_usd"] == pytest.approx(0.650 + 0.270)
    assert a["price_source"] == "AGENT_MODEL_PRICES"
    assert (b["calls"], b["invalid_replies"], b["fallbacks"], b["tokens"]) == (4, 0, 1, 1600)
    assert (b["latency_p50_ms"], b["latency_p90_ms"]) == pytest.approx((250, 470))
    assert b["cost_usd"] == pytest.approx(0.8)
    unpriced = by_model["unpriced-model"]
    assert unpriced["price_source"] == "no price"
    assert math.isnan(unpriced["cost_usd"])  # never 0
    assert unpriced["unpriced_tokens"] == 440
    nobody = by_model[analytics.NO_MODEL]
    assert (nobody["llm_errors"], nobody["errors"], nobody["calls"]) == (1, 1, 0)


def test_cost_per_run_objective_model_and_day(store, week):
    found = figures(store)
    assert found.headline["cost_usd"] == pytest.approx(1.72)
    assert found.headline["unpriced_tokens"] == 440

    by_objective = rows(found.tables["cost_by_objective"], "objective")
    leads, invoices = by_objective["Weekly leads"], by_objective["Invoices"]
    assert (leads["runs"], leads["tokens"], leads["unpriced_tokens"]) == (6, 1555, 440)
    assert leads["cost_usd"] == pytest.approx(1.085)
    assert leads["cost_per_run_usd"] == pytest.approx(1.085 / 6)
    assert (invoices["runs"], invoices["tokens"], invoices["unpriced_tokens"]) == (3, 1270, 0)
    assert invoices["cost_usd"] == pytest.approx(0.635)

    by_day = found.tables["cost_by_day"]
    assert by_day["cost_usd"].tolist() == pytest.approx([1.425, 0.12, 0.175])
    assert by_day["tokens"].tolist() == [2055, 550, 220]
    assert by_day["unpriced_tokens"].tolist() == [0, 440, 0]

    # the same figures from the functions of their own
    alone = analytics.cost_by_objective(store, since=SINCE, until=UNTIL, prices=PRICES)
    pd.testing.assert_frame_equal(alone, found.tables["cost_by_objective"])
    by_model = analytics.cost_by_model(store, since=SINCE, until=UNTIL, prices=PRICES)
    assert by_model["model"].tolist() == ["model-a", "model-b", "unpriced-model"]
    assert by_model["cost_usd"].sum() == pytest.approx(1.72)

    per_run = rows(found.tables["run_distributions"], "measure")["cost_usd"]
    # the six runs whose every token is priced: .055 .12 .12 .345 .5 .58
    assert per_run["runs"] == 6
    assert (per_run["median"], per_run["p90"]) == pytest.approx((0.2325, 0.54))
    assert per_run["mean"] == pytest.approx(1.72 / 6)


def test_the_most_expensive_and_the_slowest_runs(store, week):
    runs = week["runs"]
    found = figures(store)
    dearest = found.tables["most_expensive_runs"]
    assert dearest["run_id"].tolist()[:3] == [runs["r3"].id, runs["r1"].id, runs["r2"].id]
    assert dearest["cost_usd"].tolist()[:3] == pytest.approx([0.58, 0.5, 0.345])
    last = dearest.iloc[-1]  # no price at all: after every priced run
    assert (last["run_id"], last["unpriced_tokens"]) == (runs["r5"].id, 440)
    assert math.isnan(last["cost_usd"])

    slowest = found.tables["slowest_runs"]
    assert slowest["run_id"].tolist() == [runs[name].id for name in ("r5", "r2", "r3", "r1", "r4")]
    assert slowest["duration_ms"].tolist() == [4000, 3000, 2000, 1000, 500]
    assert slowest["objective"].tolist()[0] == "Weekly leads"
    assert len(analytics.slowest_runs(store, since=SINCE, until=UNTIL, limit=2)) == 2


def test_tools_refusals_approvals_and_budgets(store, week):
    found = figures(store)
    tools = rows(found.tables["tools"], "tool")
    count = tools["count_database"]
    assert (count["calls"], count["succeeded"], count["failed"]) == (3, 2, 1)
    assert count["failure_rate"] == pytest.approx(1 / 3)
    assert count["duration_p50_ms"] == pytest.approx(200)
    email = tools["send_email"]
    assert (email["calls"], email["denied"], email["in_flight"], email["not_succeeded"]) == (
        4,
        1,
        3,
        1,
    )
    assert email["failure_rate"] == pytest.approx(1.0)  # of the calls that finished

    refused = rows(found.tables["refusals"], "tool")
    assert list(refused) == ["send_email"]
    assert (refused["send_email"]["denied_calls"], refused["send_email"]["tool_denied_events"]) == (
        1,
        1,
    )

    asked = found.tables["approvals"].iloc[0]
    assert {name: asked[name] for name in analytics.APPROVAL_COLUMNS} == {
        "requested": 3,
        "approved": 1,
        "rejected": 1,
        "expired": 0,
        "cancelled": 0,
        "changed": 1,
        "pending": 1,
    }
    # decided after 10 and 30 minutes
    assert (asked["wait_p50_ms"], asked["wait_p90_ms"]) == pytest.approx((1_200_000, 1_680_000))
    by_tool = found.tables["approvals_by_tool"]
    assert by_tool["tool"].tolist() == ["send_email"]
    assert by_tool["requested"].tolist() == [3]

    budgets = found.tables["budgets_exhausted"]
    assert budgets["objective"].tolist() == ["Weekly leads"]
    assert budgets[["ended_runs", "budget_steps", "exhausted"]].values.tolist() == [[3, 1, 1]]
    assert budgets["share"].tolist() == pytest.approx([1 / 3])


def test_an_approval_past_its_expiry_counts_as_expired_not_waiting(store, clock):
    objective = make_objective(store)
    record = Recorder(store, clock)
    record.at(DAY_1)
    record.paused(objective.id, expires_in_h=1)
    record.at(DAY_1 + timedelta(hours=2))  # maintenance has not marked it yet
    asked = analytics.approvals_summary(store, since=SINCE).iloc[0]
    assert (asked["pending"], asked["expired"]) == (0, 1)


def test_the_objective_filter(store, week):
    invoices = figures(store, objective_id=week["invoices"].id)
    assert invoices.headline["runs"] == 3
    assert invoices.headline["cost_usd"] == pytest.approx(0.635)
    assert set(invoices.tables["models"]["model"]) == {"model-b", analytics.NO_MODEL}
    assert invoices.tables["cost_by_objective"]["objective"].tolist() == ["Invoices"]
    assert invoices.tables["tools"]["tool"].tolist() == ["send_email"]
    assert invoices.tables["budgets_exhausted"].empty
    with pytest.raises(NotFound, match="not a valid objective id"):
        figures(store, objective_id="nope")


def test_the_date_filter_and_an_empty_range(store, week):
    day_2 = analytics.analyze(
        store, since=SINCE + timedelta(days=1), until=SINCE + timedelta(days=2), prices=PRICES
    )
    assert day_2.headline["runs"] == 4
    assert day_2.tables["runs_by_day"]["day"].dt.strftime("%Y-%m-%d").tolist() == ["2026-11-03"]

    later = analytics.analyze(store, since=UNTIL, prices=PRICES)  # the run after the range
    assert later.headline["runs"] == 1
    assert later.headline["tokens"] == 11_000

    nothing = analytics.analyze(
        store, since=datetime(2020, 1, 1, tzinfo=UTC), until=datetime(2020, 1, 8, tzinfo=UTC)
    )
    assert nothing.headline["runs"] == 0
    assert nothing.headline["cost_usd"] == 0.0  # nothing called: nothing spent
    assert nothing.headline["success_rate"] is None
    assert len(nothing.tables["runs_by_day"]) == 7  # every day of the range, at 0
    assert nothing.tables["runs_by_day"]["runs"].sum() == 0
    for name in ("models", "tools", "refusals", "slowest_runs", "most_expensive_runs"):
        assert nothing.tables[name].empty, name

    with pytest.raises(InvalidInput, match="time zone"):
        analytics.runs_by_day(store, since=datetime(2026, 11, 2))
    with pytest.raises(InvalidInput, match="before it starts"):
        analytics.runs_by_day(store, since=UNTIL, until=SINCE)


def test_a_model_without_any_price_makes_the_cost_no_price(store, week):
    found = analytics.analyze(store, since=SINCE, until=UNTIL, prices={})
    assert found.headline["cost_usd"] is None  # "no price", never 0
    assert found.headline["unpriced_tokens"] == 785 + 1600 + 440
    assert analytics.format_cost(found.headline["cost_usd"]) == "no price"
    assert found.tables["most_expensive_runs"]["cost_usd"].isna().all()


def test_figures_computed_together_equal_each_computed_alone(store, week):
    """analyze shares work between tables (the runs' costs, the tools' counts): each table
    is still exactly what its own function gives, with a range and for an empty one."""
    for since, until in ((SINCE, UNTIL), (UNTIL + timedelta(days=30), UNTIL + timedelta(days=31))):
        found = analytics.analyze(store, since=since, until=until, prices=PRICES)
        scope = {"since": since, "until": until}
        alone = {
            "most_expensive_runs": analytics.most_expensive_runs(store, **scope, prices=PRICES),
            "tools": analytics.tool_stats(store, **scope),
            "refusals": analytics.refusals(store, **scope),
        }
        for name, frame in alone.items():
            pd.testing.assert_frame_equal(found.tables[name], frame)
        cost = analytics.cost_per_run(store, **scope, prices=PRICES)
        shared = found.tables["run_distributions"].tail(1).reset_index(drop=True)
        pd.testing.assert_frame_equal(shared, cost)


def test_analyze_runs_the_same_few_statements_whatever_the_number_of_runs(store, week, clock):
    """Every figure is one aggregate over the range: no statement per run, step or model."""

    def statements() -> int:
        seen: list[str] = []

        def count(conn, cursor, statement, *args) -> None:
            seen.append(statement)

        sa.event.listen(store.engine, "before_cursor_execute", count)
        try:
            figures(store)
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", count)
        return sum(statement.lstrip().upper().startswith(("SELECT", "WITH")) for statement in seen)

    few = statements()
    record = Recorder(store, clock)
    record.at(DAY_2)
    for model in ("model-a", "model-b", "model-c", "model-d"):
        record.run(week["leads"].id, answers=(Answer(model, 100, 10, 200, "read_database"),))
    assert statements() == few <= 19  # 18 figures, and which days are summarized


def test_the_engine_works_as_well_as_the_store(store, week):
    by_engine = analytics.runs_by_day(store.engine, since=SINCE, until=UNTIL)
    pd.testing.assert_frame_equal(by_engine, analytics.runs_by_day(store, since=SINCE, until=UNTIL))


def test_report_is_json_ready_and_report_text_words_it(store, week):
    found = analytics.report(store, since=SINCE, until=UNTIL, prices=PRICES)
    assert json.loads(json.dumps(found)) == found  # plain values only
    assert found["since"] == "2026-11-02T00:00:00+00:00"
    assert found["headline"]["runs"] == 9
    assert found["runs_by_day"][0]["day"] == "2026-11-02"
    assert found["approvals"]["requested"] == 3
    unpriced = next(row for row in found["models"] if row["model"] == "unpriced-model")
    assert unpriced["cost_usd"] is None

    text = analytics.report_text(found)
    assert "Run analytics from 2026-11-02 00:00 UTC to 2026-11-05 00:00 UTC, all objectives" in text
    assert "Runs: 9 runs (2 completed, 2 failed, 1 cancelled, 1 skipped, 3 in progress)" in text
    assert "Success rate: 40% of the 5 runs that ended" in text
    assert "Cost: $1.72 for 2,825 tokens (440 tokens had no price)" in text
    assert "Median time working per run: 2.0 s; approvals waiting: 1" in text
    assert re.search(r"^  Time working per run \(5 runs\) +2\.0 s +3\.6 s +2\.1 s$", text, re.M)
    assert "1 run (17%): The run used all the steps its budget allows before finishing." in text
    assert "unpriced-model: 1 call, 0 invalid replies, 0 fallbacks, 440 tokens" in text
    assert "cost no price" in text
    assert "1 run ended with no model answering" in text
    assert "Weekly leads: $1.08 over 6 runs ($0.18 per run), 440 tokens with no price" in text
    assert "count_database: 3 calls, 1 did not succeed (33%), 200 ms median" in text
    assert "send_email: 1 call" in text  # refused by policy
    assert "Approvals: 3 requested: 1 approved (1 with changes), 1 rejected, 0 expired" in text
    assert "decided in 20 min (median), 28 min (p90)" in text
    assert "Weekly leads: 1 run of 3 (steps 1)" in text
    r3, r5 = week["runs"]["r3"], week["runs"]["r5"]
    assert f"Run #{r5.run_number} · Weekly leads: 4.0 s  ({r5.id})" in text
    assert f"Run #{r3.run_number} · Invoices: $0.58  ({r3.id})" in text
    assert f"Run #{r5.run_number} · Weekly leads: no price (440 tokens)  ({r5.id})" in text

    empty = analytics.report(
        store, since=datetime(2020, 1, 1, tzinfo=UTC), until=SINCE - timedelta(days=7)
    )
    assert "No run was created in this range." in analytics.report_text(empty)


NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("30m", NOW - timedelta(minutes=30)),
        (" 2W ", NOW - timedelta(weeks=2)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00+01:00", datetime(2026, 11, 1, 7, tzinfo=UTC)),
    ],
)
def test_parse_since(text, expected):
    assert analytics.parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "7", "-3d", "7 days", "yesterday", "2026-13-01"])
def test_parse_since_refuses_with_one_sentence(text):
    with pytest.raises(ValueError, match=r"^--since must be a duration such as 7d, 24h or 30m"):
        analytics.parse_since(text, now=NOW)


def test_parse_since_refuses_no_time_at_all_saying_so():
    with pytest.raises(ValueError, match=r"^--since 0d is no time at all: give more than zero"):
        analytics.parse_since("0d", now=NOW)


def test_parse_since_refuses_the_future():
    with pytest.raises(ValueError, match="is in the future"):
        analytics.parse_since("2026-12-01", now=NOW)


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (None, "no price"),
        (float("nan"), "no price"),
        (0.0, "$0.00"),
        (0.58, "$0.58"),
        (1234.5, "$1,234.50"),
        (0.0345, "$0.0345"),
        (0.000125, "$0.000125"),
    ],
)
def test_format_cost(usd, shown):
    assert analytics.format_cost(usd) == shown
