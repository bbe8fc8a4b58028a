"""Each figure alone (a public function per table), or all of them at once (analyze)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.approvals import _approvals, waiting_approval
from agent_core.analytics.cost import (
    _cost_by_objective,
    _cost_per_run,
    _days_of_cost,
    _known_prices,
    _most_expensive_runs,
    _run_cost_figures,
)
from agent_core.analytics.daybook import stored_and_rest
from agent_core.analytics.filters import (
    TOP_RUNS,
    Prices,
    Scope,
    Source,
    _now,
    _pricing,
    _reading,
)
from agent_core.analytics.headline import _headline_figures
from agent_core.analytics.llm import _models, _priced, _token_sums
from agent_core.analytics.runs import (
    _budgets_exhausted,
    _objective_runs,
    _run_distributions,
    _runs_by_day,
    _slowest_runs,
    _status_counts,
    _stop_reasons,
)
from agent_core.analytics.summarized import tables_of
from agent_core.analytics.tools import _denied_calls, _refusals, _tools, failed_call
from agent_core.models import RunStatus
from agent_core.prices import Pricing
from agent_core.store.schema import approvals, runs


def _headline(
    conn: sa.Connection,
    scope: Scope,
    now: datetime,
    counts: pd.DataFrame,
    distributions: pd.DataFrame,
    by_model: pd.DataFrame,
) -> dict[str, Any]:
    completed_with_failures = conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(*scope.conditions(), runs.c.status == RunStatus.COMPLETED.value, failed_call(scope))
    ).scalar_one()
    tokens = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(runs.c.prompt_tokens + runs.c.completion_tokens), 0)
        ).where(*scope.conditions())
    ).scalar_one()
    waiting = conn.execute(
        sa.select(sa.func.count())
        .select_from(approvals)
        .join(runs, runs.c.id == approvals.c.run_id)
        .where(
            scope.after_start(approvals.c.created_at),
            *scope.conditions(),
            waiting_approval(now),
        )
    ).scalar_one()
    return _headline_figures(
        counts, distributions, by_model, int(completed_with_failures), int(tokens), int(waiting)
    )


def runs_by_day(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
) -> pd.DataFrame:
    """Runs per day (UTC, the day each was created), every day of the range:
    day, completed, failed, cancelled, skipped, in_progress, runs, success_rate (completed
    out of completed + failed + cancelled; NaN on a day when none ended)."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _runs_by_day(conn, scope, _now(source))


def stop_reasons(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
) -> pd.DataFrame:
    """Why runs ended, most frequent first: stop_reason, runs, share (of the runs that
    ended, skipped ones included), sentence (agent_core.render.STOP_REASONS)."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _stop_reasons(_status_counts(conn, scope))


def run_distributions(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
) -> pd.DataFrame:
    """Per run that ended (completed, failed or cancelled): one row per measure (steps,
    tool_calls, duration_ms = time working, tokens) with label, unit, runs, mean, median, p90."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _run_distributions(conn, scope)


def model_stats(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    prices: Prices = None,
) -> pd.DataFrame:
    """Per model, most used first: model, calls (steps it answered), invalid_replies
    (step_error events), llm_errors (runs that ended with llm_error, on the row
    "(no model answered)"), errors (the two), fallbacks (answers given after other models
    failed), prompt_tokens, completion_tokens, tokens (invalid replies included),
    latency_p50_ms, latency_p90_ms, input_per_1k, output_per_1k (USD per 1,000 tokens),
    price_source ("no price" when unknown) and cost_usd (NaN when unknown)."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _models(conn, scope, _pricing(prices))


def cost_by_model(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    prices: Prices = None,
) -> pd.DataFrame:
    """Cost per model, dearest first: model, prompt_tokens, completion_tokens, tokens,
    input_per_1k, output_per_1k, price_source, cost_usd (NaN: no price), unpriced_tokens."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        frame = _priced(_token_sums(conn, scope), _pricing(prices))
    frame["model"] = frame["model"].fillna("(unknown model)")
    frame = frame.sort_values(
        ["cost_usd", "tokens"], ascending=False, na_position="last", ignore_index=True
    )
    return frame[
        [
            "model",
            "prompt_tokens",
            "completion_tokens",
            "tokens",
            "input_per_1k",
            "output_per_1k",
            "price_source",
            "cost_usd",
            "unpriced_tokens",
        ]
    ]


def cost_by_objective(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    prices: Prices = None,
) -> pd.DataFrame:
    """Cost per objective, dearest first: objective_id, objective, runs, tokens, cost_usd
    (NaN: none of its tokens priced), unpriced_tokens, cost_per_run_usd."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        priced = _priced(_token_sums(conn, scope, by=["objective_id"]), _pricing(prices))
        return _cost_by_objective(priced, _objective_runs(conn, scope))


def cost_by_day(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    prices: Prices = None,
) -> pd.DataFrame:
    """Cost per day (of the runs created that day, UTC), every day of the range: day, tokens,
    cost_usd (NaN: none of the day's tokens priced), unpriced_tokens."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        priced = _priced(_token_sums(conn, scope, by=["day"]), _pricing(prices))
    return _days_of_cost(priced, scope, _now(source))


def cost_per_run(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    prices: Prices = None,
) -> pd.DataFrame:
    """The cost of a run, over the runs whose every token is priced: one row (measure
    "cost_usd", label, unit "USD", runs, mean, median, p90), as in run_distributions."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _cost_per_run(conn, scope, _known_prices(conn, scope, _pricing(prices)))


def most_expensive_runs(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    prices: Prices = None,
    limit: int = TOP_RUNS,
) -> pd.DataFrame:
    """The dearest runs (by the cost of their priced tokens, then tokens): run_id,
    run_number, objective_id, objective, status, created_at, tokens, cost_usd,
    unpriced_tokens."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        known = _known_prices(conn, scope, _pricing(prices))
        return _most_expensive_runs(conn, scope, known, limit)


def slowest_runs(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    limit: int = TOP_RUNS,
) -> pd.DataFrame:
    """The runs that worked longest (active time, pauses for approval excluded): run_id,
    run_number, objective_id, objective, status, stop_reason, created_at, duration_ms,
    steps, tool_calls, tokens."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _slowest_runs(conn, scope, limit)


def tool_stats(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
) -> pd.DataFrame:
    """Per tool, most called first: tool, calls, succeeded, failed, unknown, denied,
    rejected, expired, in_flight (started or awaiting approval), not_succeeded
    (FAILED_CALL_STATUSES), failure_rate (of the calls that finished), duration_p50_ms,
    duration_p90_ms."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _tools(conn, scope)


def refusals(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
) -> pd.DataFrame:
    """Calls policy refused, per tool: tool, denied_calls (tool calls with status denied),
    tool_denied_events (the ledger's tool_denied events)."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _refusals(conn, scope)


def approvals_summary(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    by_tool: bool = False,
) -> pd.DataFrame:
    """Approvals asked by the runs in range: requested, approved, rejected, expired (or past
    their expiry), cancelled, changed (approved with changed arguments), pending (can still
    be decided), and the time to a decision (approved or rejected): wait_p50_ms, wait_p90_ms,
    wait_mean_ms. One row, or one per tool (`tool` first) with `by_tool`."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _approvals(conn, scope, _now(source), by_tool=by_tool)


def budgets_exhausted(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
) -> pd.DataFrame:
    """Objectives whose runs ran out of budget, most often first: objective_id, objective,
    ended_runs, budget_steps, budget_tool_calls, budget_duration, budget_tokens, exhausted,
    share (of its runs that ended)."""
    scope = Scope.of(since, until, objective_id)
    with _reading(source) as conn:
        return _budgets_exhausted(conn, scope)


@dataclass(frozen=True)
class Analytics:
    """Every figure for one range and objective, computed in one read transaction."""

    since: datetime
    until: datetime | None
    objective_id: str | None
    headline: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


TABLES = (
    "runs_by_day",
    "stop_reasons",
    "run_distributions",
    "models",
    "cost_by_objective",
    "cost_by_day",
    "tools",
    "refusals",
    "approvals",
    "approvals_by_tool",
    "budgets_exhausted",
    "slowest_runs",
    "most_expensive_runs",
)


def _from_runs(
    conn: sa.Connection, scope: Scope, now: datetime, pricing: Pricing
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The headline and every table, read from the runs of the scope (18 statements)."""
    counts = _status_counts(conn, scope)
    distributions = _run_distributions(conn, scope)
    by_model = _models(conn, scope, pricing)
    known = {model: price for model in by_model["model"] if (price := pricing.price(model))}
    sums = _token_sums(conn, scope, by=["objective_id", "day"])
    priced = _priced(sums, pricing)
    objective_runs = _objective_runs(conn, scope)
    cost_per_run, dearest = _run_cost_figures(conn, scope, known, TOP_RUNS)
    tools = _tools(conn, scope)
    tables = {
        "runs_by_day": _runs_by_day(conn, scope, now),
        "stop_reasons": _stop_reasons(counts),
        "run_distributions": pd.concat([distributions, cost_per_run], ignore_index=True),
        "models": by_model,
        "cost_by_day": _days_of_cost(priced, scope, now),
        "tools": tools,
        "refusals": _refusals(conn, scope, _denied_calls(tools)),
        "approvals": _approvals(conn, scope, now, by_tool=False),
        "approvals_by_tool": _approvals(conn, scope, now, by_tool=True),
        "budgets_exhausted": _budgets_exhausted(conn, scope),
        "slowest_runs": _slowest_runs(conn, scope, TOP_RUNS),
        "most_expensive_runs": dearest,
        "cost_by_objective": _cost_by_objective(priced, objective_runs),
    }
    return _headline(conn, scope, now, counts, distributions, by_model), tables


def analyze(
    source: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    prices: Prices = None,
) -> Analytics:
    """The headline figures and every table (TABLES), as the page and `report` show them.
    `run_distributions` ends with the cost per run."""
    scope = Scope.of(since, until, objective_id)
    pricing = _pricing(prices)
    now = _now(source)
    with _reading(source) as conn:
        summary = stored_and_rest(conn, scope, now)
        if summary is not None:  # closed days summarized: read those, not their runs
            headline, tables = tables_of(conn, summary, scope, now, pricing)
        else:
            headline, tables = _from_runs(conn, scope, now, pricing)
    return Analytics(
        since=scope.since,
        until=scope.until,
        objective_id=scope.objective_id,
        headline=headline,
        tables={name: tables[name] for name in TABLES},
    )
