"""Runs: outcomes per day, stop reasons, per-run distributions, budgets, the slowest runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.filters import BUDGET_REASONS, ENDED, IN_PROGRESS, MAX_FILLED_DAYS, Scope
from agent_core.analytics.sql import _Day, _frame, _ints, _number, _quantiles, _rate
from agent_core.models import RunStatus, StopReason
from agent_core.render import STOP_REASONS
from agent_core.store.schema import objectives, runs


def _status_counts(conn: sa.Connection, scope: Scope) -> pd.DataFrame:
    query = (
        sa.select(runs.c.status, runs.c.stop_reason, sa.func.count().label("runs"))
        .where(*scope.conditions())
        .group_by(runs.c.status, runs.c.stop_reason)
    )
    return _frame(conn, query)


def _outcome_columns(frame: pd.DataFrame, status: pd.Series, count: pd.Series) -> pd.DataFrame:
    frame = frame.copy()
    frame["completed"] = count.where(status == RunStatus.COMPLETED, 0)
    frame["failed"] = count.where(status == RunStatus.FAILED, 0)
    frame["cancelled"] = count.where(status == RunStatus.CANCELLED, 0)
    frame["skipped"] = count.where(status == RunStatus.SKIPPED, 0)
    frame["in_progress"] = count.where(status.isin(list(IN_PROGRESS)), 0)
    return frame


def _runs_by_day(conn: sa.Connection, scope: Scope, now: datetime) -> pd.DataFrame:
    day = _Day(runs.c.created_at)
    inner = sa.select(day.label("day"), runs.c.status).where(*scope.conditions()).subquery()
    counted = _frame(
        conn,
        sa.select(inner.c.day, inner.c.status, sa.func.count().label("runs")).group_by(
            inner.c.day, inner.c.status
        ),
    )
    return _days_table(counted, scope, now)


def _days_table(counted: pd.DataFrame, scope: Scope, now: datetime) -> pd.DataFrame:
    """Runs per day and status (day, status, runs) as the runs_by_day table."""
    counts = ["completed", "failed", "cancelled", "skipped", "in_progress"]
    if counted.empty:
        by_day = pd.DataFrame(columns=["day", *counts])
    else:
        by_day = _outcome_columns(counted, counted["status"], counted["runs"])
        by_day = by_day.groupby("day", as_index=False)[counts].sum()
    by_day["day"] = pd.to_datetime(by_day["day"])
    by_day = _fill_days(by_day, scope, now, counts)
    by_day = _ints(by_day, counts)
    by_day["runs"] = by_day[counts].sum(axis=1).astype("int64")
    ended = by_day["completed"] + by_day["failed"] + by_day["cancelled"]
    by_day["success_rate"] = _rate(by_day["completed"], ended)
    return by_day[["day", *counts, "runs", "success_rate"]]


def _fill_days(
    frame: pd.DataFrame, scope: Scope, now: datetime, counts: Sequence[str]
) -> pd.DataFrame:
    """Every day of the range, 0 where nothing happened (a chart then shows the quiet days)."""
    last = (scope.until - timedelta(microseconds=1)) if scope.until else now
    first_day, last_day = scope.since.date(), max(last, scope.since).date()
    if (last_day - first_day).days > MAX_FILLED_DAYS:
        if frame.empty:
            return frame
        first_day, last_day = frame["day"].min().date(), frame["day"].max().date()
    days = pd.DataFrame({"day": pd.date_range(first_day, last_day, freq="D")})
    filled = days.merge(frame, on="day", how="left")
    for name in counts:
        filled[name] = filled[name].fillna(0)
    return filled.sort_values("day", ignore_index=True)


def _stop_reasons(counts: pd.DataFrame) -> pd.DataFrame:
    frame = counts.dropna(subset=["stop_reason"])
    frame = frame.groupby("stop_reason", as_index=False)["runs"].sum()
    ended = int(counts.loc[counts["status"].isin([*ENDED, RunStatus.SKIPPED]), "runs"].sum())
    frame["runs"] = frame["runs"].astype("int64")
    frame["share"] = frame["runs"] / ended if ended else float("nan")
    frame["sentence"] = [_stop_sentence(reason) for reason in frame["stop_reason"]]
    frame = frame.sort_values(["runs", "stop_reason"], ascending=[False, True], ignore_index=True)
    return frame[["stop_reason", "runs", "share", "sentence"]]


def _stop_sentence(reason: str) -> str:
    try:
        return STOP_REASONS[StopReason(reason)]
    except (ValueError, KeyError):
        return reason


DISTRIBUTIONS = (
    ("steps", "Steps per run", "steps"),
    ("tool_calls", "Tool calls per run", "calls"),
    ("duration_ms", "Time working per run", "ms"),
    ("tokens", "Tokens per run", "tokens"),
)


def _run_distributions(
    conn: sa.Connection, scope: Scope, *, portable: bool = False
) -> pd.DataFrame:
    source = (
        sa.select(
            runs.c.steps_count.label("steps"),
            runs.c.tool_calls_count.label("tool_calls"),
            runs.c.active_ms.label("duration_ms"),
            (runs.c.prompt_tokens + runs.c.completion_tokens).label("tokens"),
        )
        .where(*scope.conditions(), runs.c.status.in_([status.value for status in ENDED]))
        .subquery("ended_runs")
    )
    names = [name for name, _, _ in DISTRIBUTIONS]
    row = conn.execute(_quantiles(conn.dialect.name, source, names, portable=portable)).one()
    return _distributions_table(row._mapping)


def _distributions_table(values: Mapping[str, Any]) -> pd.DataFrame:
    """`{name}_n`, `_mean`, `_p50` and `_p90` of each of DISTRIBUTIONS as a table."""
    return pd.DataFrame(
        [
            {
                "measure": name,
                "label": label,
                "unit": unit,
                "runs": int(values[f"{name}_n"] or 0),
                "mean": _number(values[f"{name}_mean"]),
                "median": _number(values[f"{name}_p50"]),
                "p90": _number(values[f"{name}_p90"]),
            }
            for name, label, unit in DISTRIBUTIONS
        ],
        columns=["measure", "label", "unit", "runs", "mean", "median", "p90"],
    ).astype({"mean": "float64", "median": "float64", "p90": "float64"})


def _budgets_exhausted(conn: sa.Connection, scope: Scope) -> pd.DataFrame:
    reasons = [reason.value for reason in BUDGET_REASONS]
    query = (
        sa.select(
            runs.c.objective_id,
            objectives.c.title.label("objective"),
            sa.func.count().label("ended_runs"),
            *(
                sa.func.sum(sa.case((runs.c.stop_reason == reason, 1), else_=0)).label(reason)
                for reason in reasons
            ),
        )
        .join_from(runs, objectives, objectives.c.id == runs.c.objective_id)
        .where(*scope.conditions(), runs.c.status.in_([status.value for status in ENDED]))
        .group_by(runs.c.objective_id, objectives.c.title)
    )
    return _budgets_table(_frame(conn, query))


def _budgets_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Ended runs and budget stops per objective (objective_id, objective, ended_runs, a
    column per budget reason) as the budgets_exhausted table."""
    reasons = [reason.value for reason in BUDGET_REASONS]
    frame = _ints(frame, ["ended_runs", *reasons])
    frame["exhausted"] = frame[reasons].sum(axis=1).astype("int64")
    frame["share"] = _rate(frame["exhausted"], frame["ended_runs"])
    frame = frame[frame["exhausted"] > 0]
    frame = frame.sort_values(
        ["exhausted", "objective"], ascending=[False, True], ignore_index=True
    )
    return frame[["objective_id", "objective", "ended_runs", *reasons, "exhausted", "share"]]


def _run_naming() -> tuple[sa.ColumnElement[Any], ...]:
    """What names a run in a list of runs: its id, number, objective, status."""
    return (
        runs.c.id.label("run_id"),
        runs.c.run_number,
        runs.c.objective_id,
        objectives.c.title.label("objective"),
        runs.c.status,
    )


def _slowest_runs(conn: sa.Connection, scope: Scope, limit: int) -> pd.DataFrame:
    return _slowest_where(conn, [*scope.conditions(), runs.c.active_ms > 0], limit)


def _slowest_where(
    conn: sa.Connection, conditions: Sequence[sa.ColumnElement[bool]], limit: int
) -> pd.DataFrame:
    """The `limit` runs that worked longest among those meeting `conditions`."""
    query = (
        sa.select(
            *_run_naming(),
            runs.c.stop_reason,
            runs.c.created_at,
            runs.c.active_ms.label("duration_ms"),
            runs.c.steps_count.label("steps"),
            runs.c.tool_calls_count.label("tool_calls"),
            (runs.c.prompt_tokens + runs.c.completion_tokens).label("tokens"),
        )
        .join_from(runs, objectives, objectives.c.id == runs.c.objective_id)
        .where(*conditions)
        .order_by(runs.c.active_ms.desc(), runs.c.id)
        .limit(limit)
    )
    return _ints(_frame(conn, query), ["duration_ms", "steps", "tool_calls", "tokens"])


def _objective_runs(conn: sa.Connection, scope: Scope) -> pd.DataFrame:
    query = (
        sa.select(
            runs.c.objective_id,
            objectives.c.title.label("objective"),
            sa.func.count().label("runs"),
        )
        .join_from(runs, objectives, objectives.c.id == runs.c.objective_id)
        .where(*scope.conditions())
        .group_by(runs.c.objective_id, objectives.c.title)
    )
    return _ints(_frame(conn, query), ["runs"])
