"""Every table and the headline from a Summary, shaped by the same functions as the figures
read from the runs, so that both ways give the same tables (a test holds them equal)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.approvals import APPROVAL_COLUMNS, _approvals_table
from agent_core.analytics.cost import (
    DEAREST_COLUMNS,
    _cost_by_objective,
    _cost_distribution,
    _days_of_cost,
    _dearest_frame,
)
from agent_core.analytics.filters import BUDGET_REASONS, ENDED, TOP_RUNS, Scope
from agent_core.analytics.headline import _headline_figures
from agent_core.analytics.llm import _models_table, _priced
from agent_core.analytics.runs import (
    DISTRIBUTIONS,
    _budgets_table,
    _days_table,
    _distributions_table,
    _run_naming,
    _slowest_where,
    _stop_reasons,
)
from agent_core.analytics.sql import _frame
from agent_core.analytics.summary import (
    APPROVALS,
    CALLS,
    COMPLETED_WITH_FAILED_CALLS,
    COMPLETION_TOKENS,
    FALLBACKS,
    INVALID_REPLIES,
    LATENCY,
    PROMPT_TOKENS,
    RUNS,
    TOOL_CALLS,
    TOOL_DENIED_EVENTS,
    TOOL_DURATION,
    WAIT,
    Summary,
    first_of,
    quantiles,
    run_costs,
)
from agent_core.analytics.tools import _denied_calls, _refusals_table, _tools_table
from agent_core.models import StopReason, ToolCallStatus
from agent_core.prices import Pricing
from agent_core.store.schema import objectives, runs


def tables_of(
    conn: sa.Connection, summary: Summary, scope: Scope, now: datetime, pricing: Pricing
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The headline and the tables (analytics.TABLES) of a Summary."""
    counts = _status_counts(summary)
    spreads: dict[str, Any] = {}
    for name, _, _ in DISTRIBUTIONS:
        spreads.update(quantiles(summary.values(name), name))
    distributions = _distributions_table(spreads)
    by_model = _models(summary, counts, pricing)
    priced = _priced(_token_sums(summary), pricing)
    titles = _titles(conn, summary)
    tools = _tools(summary)
    costs, dearest = run_costs(summary.usage, pricing)
    tables = {
        "runs_by_day": _days_table(_by_day(summary), scope, now),
        "stop_reasons": _stop_reasons(counts),
        "run_distributions": pd.concat(
            [distributions, _cost_distribution(quantiles(costs, "cost_usd"))],
            ignore_index=True,
        ),
        "models": by_model,
        "cost_by_objective": _cost_by_objective(priced, _objective_runs(summary, titles)),
        "cost_by_day": _days_of_cost(priced, scope, now),
        "tools": tools,
        "refusals": _refusals_table(_denied_calls(tools), _denied_events(summary)),
        "approvals": _approvals(summary, by_tool=False),
        "approvals_by_tool": _approvals(summary, by_tool=True),
        "budgets_exhausted": _budgets(summary, titles),
        "slowest_runs": _slowest(conn, summary),
        "most_expensive_runs": _dearest(conn, dearest),
    }
    approvals = summary.measure(APPROVALS)
    headline = _headline_figures(
        counts,
        distributions,
        by_model,
        completed_with_failures=int(summary.measure(COMPLETED_WITH_FAILED_CALLS)["count"].sum()),
        tokens=int(summary.measure(RUNS)["total"].sum()),
        waiting=int(approvals.loc[approvals["key2"] == "pending", "count"].sum()),
    )
    return headline, tables


def _grouped(frame: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    return frame.groupby(by, dropna=False, sort=False)[values].sum().reset_index()


def _status_counts(summary: Summary) -> pd.DataFrame:
    found = _grouped(summary.measure(RUNS), ["key", "key2"], ["count"])
    frame = found.rename(columns={"key": "status", "key2": "stop_reason", "count": "runs"})
    frame["stop_reason"] = frame["stop_reason"].astype(object).where(frame["stop_reason"].notna())
    return frame.astype({"runs": "int64"})


def _by_day(summary: Summary) -> pd.DataFrame:
    found = _grouped(summary.measure(RUNS), ["day", "key"], ["count"])
    return found.rename(columns={"key": "status", "count": "runs"})


def _per_model(summary: Summary, measure: str, column: str, value: str) -> pd.DataFrame:
    found = _grouped(summary.measure(measure), ["key"], [value])
    return found.rename(columns={"key": "model", value: column})


def _models(summary: Summary, counts: pd.DataFrame, pricing: Pricing) -> pd.DataFrame:
    stats = _per_model(summary, CALLS, "calls", "count")
    for measure, column, value in (
        (INVALID_REPLIES, "invalid_replies", "count"),
        (PROMPT_TOKENS, "prompt_tokens", "total"),
        (COMPLETION_TOKENS, "completion_tokens", "total"),
    ):
        stats = stats.merge(_per_model(summary, measure, column, value), on="model", how="outer")
    latencies = pd.DataFrame(
        [
            {"model": model, **quantiles(summary.values(LATENCY, model), LATENCY)}
            for model in stats["model"]
        ],
        columns=["model", *quantiles(summary.values(LATENCY), LATENCY)],
    )
    stats = stats.merge(latencies, on="model", how="left")
    fallbacks = _per_model(summary, FALLBACKS, "fallbacks", "count")
    llm_errors = int(counts.loc[counts["stop_reason"] == StopReason.LLM_ERROR.value, "runs"].sum())
    return _models_table(stats, fallbacks, llm_errors, pricing)


def _token_sums(summary: Summary) -> pd.DataFrame:
    """Prompt and completion tokens per objective, day and model."""
    keys = ["objective_id", "day", "key"]
    prompt = _grouped(summary.measure(PROMPT_TOKENS), keys, ["total"])
    completion = _grouped(summary.measure(COMPLETION_TOKENS), keys, ["total"])
    sums = prompt.merge(completion, on=keys, how="outer", suffixes=("_p", "_c"))
    sums = sums.rename(
        columns={"key": "model", "total_p": "prompt_tokens", "total_c": "completion_tokens"}
    )
    for name in ("prompt_tokens", "completion_tokens"):
        sums[name] = sums[name].fillna(0).astype("int64")
    return sums[["objective_id", "day", "model", "prompt_tokens", "completion_tokens"]]


def _titles(conn: sa.Connection, summary: Summary) -> pd.DataFrame:
    ids = sorted(set(summary.measure(RUNS)["objective_id"]))
    if not ids:
        return pd.DataFrame(columns=["objective_id", "objective"])
    query = sa.select(objectives.c.id.label("objective_id"), objectives.c.title.label("objective"))
    return _frame(conn, query.where(objectives.c.id.in_(ids)))


def _objective_runs(summary: Summary, titles: pd.DataFrame) -> pd.DataFrame:
    found = _grouped(summary.measure(RUNS), ["objective_id"], ["count"])
    frame = titles.merge(found.rename(columns={"count": "runs"}), on="objective_id")
    return frame.astype({"runs": "int64"})[["objective_id", "objective", "runs"]]


def _budgets(summary: Summary, titles: pd.DataFrame) -> pd.DataFrame:
    ended = summary.measure(RUNS)
    ended = ended[ended["key"].isin([status.value for status in ENDED])]
    reasons = [reason.value for reason in BUDGET_REASONS]
    if ended.empty:
        frame = pd.DataFrame(columns=["objective_id", "ended_runs", *reasons])
    else:
        frame = ended.groupby("objective_id")["count"].sum().rename("ended_runs").reset_index()
        stopped = ended[ended["key2"].isin(reasons)]  # a run may end without a stop reason
        for reason in reasons:
            counts = stopped[stopped["key2"] == reason].groupby("objective_id")["count"].sum()
            frame[reason] = frame["objective_id"].map(counts).fillna(0).to_numpy()
    return _budgets_table(titles.merge(frame, on="objective_id"))


def _tools(summary: Summary) -> pd.DataFrame:
    calls = summary.measure(TOOL_CALLS)
    statuses = [status.value for status in ToolCallStatus]
    if calls.empty:
        return _tools_table(pd.DataFrame())
    wide = calls.pivot_table(index="key", columns="key2", values="count", aggfunc="sum")
    found = pd.DataFrame({"tool": wide.index})
    for status in statuses:
        found[status] = wide[status].fillna(0).to_numpy() if status in wide else 0
    durations = [
        quantiles(summary.values(TOOL_DURATION, tool), "duration_ms") for tool in found["tool"]
    ]
    found["duration_ms_p50"] = [row["duration_ms_p50"] for row in durations]
    found["duration_ms_p90"] = [row["duration_ms_p90"] for row in durations]
    return _tools_table(found)


def _denied_events(summary: Summary) -> pd.DataFrame:
    found = _grouped(summary.measure(TOOL_DENIED_EVENTS), ["key"], ["count"])
    return found.rename(columns={"key": "tool", "count": "tool_denied_events"})


def _approvals(summary: Summary, *, by_tool: bool) -> pd.DataFrame:
    tallies = summary.measure(APPROVALS)
    counts = tallies.pivot_table(
        index="key", columns="key2", values="count", aggfunc="sum", fill_value=0
    )
    tools = list(counts.index) if by_tool else [None]
    rows = []
    for tool in tools:
        row: dict[str, Any] = {"tool": tool} if by_tool else {}
        for name in APPROVAL_COLUMNS:
            if name not in counts:
                row[name] = 0
            else:
                row[name] = int(counts.loc[tool, name]) if by_tool else int(counts[name].sum())
        waits = summary.values(WAIT, tool, any_key=not by_tool)
        row.update(quantiles(waits, WAIT))
        rows.append(row)
    columns = [*(["tool"] if by_tool else []), *APPROVAL_COLUMNS]
    columns += list(quantiles(summary.values(WAIT), WAIT))
    return _approvals_table(pd.DataFrame(rows, columns=columns), by_tool=by_tool)


def _slowest(conn: sa.Connection, summary: Summary) -> pd.DataFrame:
    ids = first_of(summary.top, TOP_RUNS)
    return _slowest_where(conn, [runs.c.id.in_(ids)], TOP_RUNS)


def _dearest(conn: sa.Connection, dearest: pd.DataFrame) -> pd.DataFrame:
    """The dearest runs (run_id, tokens, cost_usd, unpriced_tokens; dearest first) named."""
    ids = list(dearest["run_id"])
    details = _frame(
        conn,
        sa.select(*_run_naming(), runs.c.created_at)
        .join_from(runs, objectives, objectives.c.id == runs.c.objective_id)
        .where(runs.c.id.in_(ids)),
    )
    frame = details.merge(dearest.astype({"cost_usd": "float64"}), on="run_id")
    frame["_rank"] = frame["run_id"].map({run_id: rank for rank, run_id in enumerate(ids)})
    frame = frame.sort_values("_rank", ignore_index=True)
    return _dearest_frame(frame[list(DEAREST_COLUMNS)])
