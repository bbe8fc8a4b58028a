"""Run analytics: whether the agents work, what they cost, and where they get stuck.

Every figure is aggregated in the database, by the same SQLAlchemy Core queries on SQLite and
PostgreSQL, and comes back as a small pandas DataFrame: a row per day, status, model, tool or
objective, never a row per run, step or event (the two top-10 lists of runs excepted).

Filters: the runs created in [since, until), and optionally those of one objective. A run's
steps, tool calls, approvals and events follow it: they count when their run is in range.

Percentiles (median, p90) are PostgreSQL's `percentile_cont` (linear interpolation between
the two nearest ranks), computed in the database on both backends: on PostgreSQL by
`percentile_cont` itself; on SQLite, which has no percentile function, by ranking the values
with ROW_NUMBER() and COUNT() windows and picking the rank(s) around the percentile
(`_quantiles`). Both give the same value.

Cost: tokens are summed per model in SQL (the steps, plus the invalid replies the ledger
records as step_error events: those tokens were billed too), and each model's sums are
priced once (agent_core.prices: AGENT_MODEL_PRICES, else genai-prices). A model without a
price shows "no price" (NaN in a DataFrame, None in a report), never 0, and each total says
how many tokens had no price. The cost of each run, for the most expensive ones and the
distribution per run, is computed in SQL from the same per-model prices.

Figures read from ledger events (invalid replies, fallbacks, tool_denied) cover what the
ledger still holds: maintenance prunes events older than AGENT_EVENTS_RETENTION_DAYS.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from agent_core.config import load_settings
from agent_core.errors import InvalidInput
from agent_core.events import EventType
from agent_core.models import (
    FAILED_CALL_STATUSES,
    ApprovalStatus,
    RunStatus,
    StopReason,
    ToolCallStatus,
)
from agent_core.prices import ModelPrice, Pricing, TokenPrice, parse_model_prices
from agent_core.render import STOP_REASONS, format_duration
from agent_core.store import Store
from agent_core.store.base import parse_id
from agent_core.store.schema import approvals, events, objectives, runs, steps, tool_calls

Source = Store | Engine
Prices = Pricing | Mapping[str, TokenPrice] | None

QUANTILES = ((0.5, "p50"), (0.9, "p90"))
ENDED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
IN_PROGRESS = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)
BUDGET_REASONS = (
    StopReason.BUDGET_STEPS,
    StopReason.BUDGET_TOOL_CALLS,
    StopReason.BUDGET_DURATION,
    StopReason.BUDGET_TOKENS,
)
# The events that carry the LLM facts of an answer (model, tokens, latency, fallback_from):
# each answer is in exactly one of them.
ANSWER_EVENTS = (
    EventType.STEP_COMPLETED,
    EventType.STEP_STARTED,
    EventType.APPROVAL_REQUESTED,
    EventType.STEP_ERROR,
)
NO_MODEL = "(no model answered)"
NO_PRICE = "no price"
TOP_RUNS = 10
MAX_FILLED_DAYS = 400
CLOCK_SLACK = timedelta(hours=1)


# --- scope: which runs count -------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The runs created in [since, until), of one objective or all."""

    since: datetime
    until: datetime | None = None
    objective_id: str | None = None

    @classmethod
    def of(cls, since: datetime, until: datetime | None, objective_id: str | None) -> Scope:
        for name, moment in (("since", since), ("until", until)):
            if name == "until" and moment is None:
                continue
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise InvalidInput(f"{name} must be a datetime with a time zone, not {moment!r}")
        if until is not None and until <= since:
            raise InvalidInput(f"the range ends ({until:%Y-%m-%d}) before it starts")
        key = parse_id(objective_id, "objective") if objective_id else None
        return cls(
            since=since.astimezone(UTC), until=until and until.astimezone(UTC), objective_id=key
        )

    def after_start(self, created_at: sa.ColumnElement[datetime]) -> sa.ColumnElement[bool]:
        """A bound on the creation time of a run's own rows (steps, tool calls, approvals,
        events), which come after the run: redundant with the run's range, it lets an index
        on the child table's created_at find the range's rows without reading the whole
        table. CLOCK_SLACK keeps a row written by a worker whose clock lags a little."""
        return created_at >= self.since - CLOCK_SLACK

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        found = [runs.c.created_at >= self.since]
        if self.until is not None:
            found.append(runs.c.created_at < self.until)
        if self.objective_id is not None:
            found.append(runs.c.objective_id == self.objective_id)
        return found


@contextmanager
def _reading(source: Source) -> Iterator[sa.Connection]:
    if isinstance(source, Store):
        with source.reading() as conn:
            yield conn
    else:
        with source.connect() as conn, conn.begin():
            yield conn


def _pricing(prices: Prices) -> Pricing:
    """The given prices, or the configured ones (AGENT_MODEL_PRICES over genai-prices)."""
    if isinstance(prices, Pricing):
        return prices
    if prices is None:
        return Pricing(load_settings().agent_model_prices)
    return Pricing(parse_model_prices(prices))


# --- SQL pieces the two dialects write differently -----------------------------------------


class _Day(FunctionElement[str]):
    """The UTC day of a timestamp as 'YYYY-MM-DD'."""

    type = sa.String()
    name = "utc_day"
    inherit_cache = True


@compiles(_Day, "sqlite")
def _day_sqlite(element: _Day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"  # stored as UTC text


@compiles(_Day, "postgresql")
def _day_postgresql(element: _Day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class _Millis(FunctionElement[float]):
    """Milliseconds from the first timestamp to the second."""

    type = sa.Float()
    name = "millis_between"
    inherit_cache = True


@compiles(_Millis, "sqlite")
def _millis_sqlite(element: _Millis, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"ROUND((julianday({end}) - julianday({start})) * 86400000.0)"


@compiles(_Millis, "postgresql")
def _millis_postgresql(element: _Millis, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"ROUND(EXTRACT(EPOCH FROM ({end} - {start})) * 1000)"


class _Floor(FunctionElement[int]):
    """floor() of a number that is 0 or more (SQLite may lack floor(): CAST truncates)."""

    type = sa.Integer()
    name = "floor_of"
    inherit_cache = True


@compiles(_Floor, "sqlite")
def _floor_sqlite(element: _Floor, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


@compiles(_Floor, "postgresql")
def _floor_postgresql(element: _Floor, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(floor({compiler.process(element.clauses, **kw)}) AS INTEGER)"


def _quantiles(
    dialect: str,
    source: sa.Subquery,
    values: Sequence[str],
    *,
    by: Sequence[str] = (),
    extra: Callable[[Any], Sequence[sa.ColumnElement[Any]]] = lambda columns: (),
    carry: Sequence[str] = (),
    portable: bool = False,
) -> sa.Select[Any]:
    """Per group of `by`: for each column of `values`, `{v}_n` (values that are not NULL),
    `{v}_mean`, `{v}_p50` and `{v}_p90`; then the `extra` aggregates (given the columns of
    the relation aggregated: `by`, `values` and the columns named in `carry`).

    PostgreSQL: percentile_cont(f) WITHIN GROUP (ORDER BY v). Elsewhere (SQLite, or with
    `portable`): each value's rank among its group's values, ROW_NUMBER() ordered with NULLs
    last, and COUNT() of the group's values, are computed by window functions; then, with
    pos = f * (n - 1), the percentile is the value at rank floor(pos) + 1 plus the fraction
    pos - floor(pos) of the step to the value at the next rank: percentile_cont's definition.
    Only the columns used are ranked: SQLite copies each ranked row whole into its window.
    """
    if dialect == "postgresql" and not portable:
        columns = source.c
        parts: list[sa.ColumnElement[Any]] = [columns[name] for name in by]
        for name in values:
            value = columns[name]
            parts += [
                sa.func.count(value).label(f"{name}_n"),
                sa.func.avg(value).label(f"{name}_mean"),
            ]
            parts += [
                sa.func.percentile_cont(sa.literal(fraction, sa.Float))
                .within_group(value)
                .label(f"{name}_{tag}")
                for fraction, tag in QUANTILES
            ]
        return sa.select(*parts, *extra(columns)).group_by(*(columns[name] for name in by))

    keys = [source.c[name] for name in by] or None
    ranks: list[sa.ColumnElement[Any]] = []
    for name in values:
        value = source.c[name]
        ranks.append(
            sa.func.row_number()
            .over(partition_by=keys, order_by=(value.is_(None), value))
            .label(f"{name}__rank")
        )
        ranks.append(sa.func.count(value).over(partition_by=keys).label(f"{name}__n"))
    used = dict.fromkeys([*by, *values, *carry])
    ranked = sa.select(*(source.c[name] for name in used), *ranks).subquery("ranked")
    columns = ranked.c
    parts = [columns[name] for name in by]
    for name in values:
        value, rank, count = columns[name], columns[f"{name}__rank"], columns[f"{name}__n"]
        total = sa.func.max(count)
        parts += [
            sa.func.coalesce(total, 0).label(f"{name}_n"),
            sa.func.avg(value).label(f"{name}_mean"),
        ]
        for fraction, tag in QUANTILES:
            share = sa.literal(fraction, sa.Float)
            low_rank = _Floor(share * (count - 1)) + 1  # per row: the same in a whole group
            low = sa.func.max(sa.case((rank == low_rank, value)))
            high = sa.func.max(sa.case((rank == low_rank + 1, value)))
            step = share * (total - 1) - _Floor(share * (total - 1))
            parts.append((low + step * (sa.func.coalesce(high, low) - low)).label(f"{name}_{tag}"))
    return sa.select(*parts, *extra(columns)).group_by(*(columns[name] for name in by))


def _frame(conn: sa.Connection, query: sa.Select[Any]) -> pd.DataFrame:
    result = conn.execute(query)
    return pd.DataFrame(result.all(), columns=list(result.keys()))


def _number(value: Any) -> float | None:
    """A database number (int, float, Decimal, None) as a float, or None."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _floats(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    for name in names:
        frame[name] = pd.to_numeric(frame[name].map(_number), errors="coerce").astype("float64")
    return frame


def _ints(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    for name in names:
        frame[name] = frame[name].fillna(0).astype("int64")
    return frame


def _rate(part: pd.Series, whole: pd.Series) -> pd.Series:
    """part / whole, NaN where whole is 0."""
    return (part / whole.where(whole > 0)).astype("float64")


# --- runs: outcomes, stop reasons, per-run distributions -----------------------------------


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
    return pd.DataFrame(
        [
            {
                "measure": name,
                "label": label,
                "unit": unit,
                "runs": int(row._mapping[f"{name}_n"] or 0),
                "mean": _number(row._mapping[f"{name}_mean"]),
                "median": _number(row._mapping[f"{name}_p50"]),
                "p90": _number(row._mapping[f"{name}_p90"]),
            }
            for name, label, unit in DISTRIBUTIONS
        ],
        columns=["measure", "label", "unit", "runs", "mean", "median", "p90"],
    ).astype({"mean": "float64", "median": "float64", "p90": "float64"})


# --- LLM answers: per model, and their cost ------------------------------------------------


def _answers(scope: Scope, *names: str) -> sa.Subquery:
    """Every LLM answer of the runs in scope: the steps, and the invalid replies (step_error
    events), each with its run's objective and day, model, tokens, latency and `invalid`;
    only the columns `names` when given (fewer columns for the database to carry)."""
    data = events.c.data
    in_scope = scope.conditions()
    valid = {
        "run_id": steps.c.run_id,
        "objective_id": runs.c.objective_id,
        "day": _Day(runs.c.created_at),
        "model": steps.c.model,
        "prompt_tokens": steps.c.prompt_tokens,
        "completion_tokens": steps.c.completion_tokens,
        "latency_ms": steps.c.latency_ms,
        "invalid": sa.literal(0),
    }
    invalid = {
        "run_id": events.c.run_id,
        "objective_id": runs.c.objective_id,
        "day": _Day(runs.c.created_at),
        "model": data["model"].as_string(),
        "prompt_tokens": sa.func.coalesce(data["prompt_tokens"].as_integer(), 0),
        "completion_tokens": sa.func.coalesce(data["completion_tokens"].as_integer(), 0),
        "latency_ms": data["latency_ms"].as_integer(),
        "invalid": sa.literal(1),
    }
    chosen = names or tuple(valid)
    steps_part = (
        sa.select(*(valid[name].label(name) for name in chosen))
        .join_from(steps, runs, runs.c.id == steps.c.run_id)
        .where(scope.after_start(steps.c.created_at), *in_scope)
    )
    events_part = (
        sa.select(*(invalid[name].label(name) for name in chosen))
        .join_from(events, runs, runs.c.id == events.c.run_id)
        .where(
            events.c.event_type == EventType.STEP_ERROR.value,
            scope.after_start(events.c.created_at),
            *in_scope,
        )
    )
    return sa.union_all(steps_part, events_part).subquery("answers")


def _token_sums(conn: sa.Connection, scope: Scope, by: Sequence[str] = ()) -> pd.DataFrame:
    """Prompt and completion tokens per model (and per `by`: objective_id, day), in SQL."""
    answers = _answers(scope, *by, "model", "prompt_tokens", "completion_tokens")
    keys = [answers.c[name] for name in by]
    query = sa.select(
        *keys,
        answers.c.model,
        sa.func.sum(answers.c.prompt_tokens).label("prompt_tokens"),
        sa.func.sum(answers.c.completion_tokens).label("completion_tokens"),
    ).group_by(*keys, answers.c.model)
    return _ints(_frame(conn, query), ["prompt_tokens", "completion_tokens"])


def _priced(sums: pd.DataFrame, pricing: Pricing) -> pd.DataFrame:
    """Each row's cost from its model's price (NaN without one) and its unpriced tokens."""
    frame = sums.copy()
    found = {model: pricing.price(model) for model in frame["model"].drop_duplicates()}
    tokens = frame["prompt_tokens"] + frame["completion_tokens"]
    frame["tokens"] = tokens.astype("int64")
    frame["input_per_1k"] = [_price_part(found[m], 0) for m in frame["model"]]
    frame["output_per_1k"] = [_price_part(found[m], 1) for m in frame["model"]]
    frame["price_source"] = [found[m].source if found[m] else NO_PRICE for m in frame["model"]]
    frame["cost_usd"] = [
        price.cost(prompt, completion) if price else float("nan")
        for price, prompt, completion in zip(
            (found[m] for m in frame["model"]),
            frame["prompt_tokens"],
            frame["completion_tokens"],
            strict=True,
        )
    ]
    frame["cost_usd"] = frame["cost_usd"].astype("float64")
    frame["unpriced_tokens"] = tokens.where(frame["cost_usd"].isna(), 0).astype("int64")
    return frame


def _price_part(price: ModelPrice | None, index: int) -> float:
    return float("nan") if price is None else float(price[index])


def _cost_by(priced: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Sum priced rows per `by`: cost is NaN only when none of the group's tokens is priced."""
    columns = [*by, "tokens", "cost_usd", "unpriced_tokens"]
    if priced.empty:
        return pd.DataFrame(columns=columns).astype(
            {"tokens": "int64", "cost_usd": "float64", "unpriced_tokens": "int64"}
        )
    grouped = priced.groupby(list(by), as_index=False, dropna=False).agg(
        tokens=("tokens", "sum"),
        cost_usd=("cost_usd", lambda costs: costs.sum(min_count=1)),
        unpriced_tokens=("unpriced_tokens", "sum"),
    )
    return grouped[columns]


def _models(conn: sa.Connection, scope: Scope, pricing: Pricing) -> pd.DataFrame:
    answers = _answers(
        scope, "model", "latency_ms", "invalid", "prompt_tokens", "completion_tokens"
    )
    stats = _frame(
        conn,
        _quantiles(
            conn.dialect.name,
            answers,
            ["latency_ms"],
            by=["model"],
            extra=lambda c: (
                sa.func.sum(1 - c.invalid).label("calls"),
                sa.func.sum(c.invalid).label("invalid_replies"),
                sa.func.sum(c.prompt_tokens).label("prompt_tokens"),
                sa.func.sum(c.completion_tokens).label("completion_tokens"),
            ),
            carry=["invalid", "prompt_tokens", "completion_tokens"],
        ),
    )
    stats = stats.rename(
        columns={"latency_ms_p50": "latency_p50_ms", "latency_ms_p90": "latency_p90_ms"}
    )
    fallbacks = _frame(conn, _fallbacks_query(scope))
    llm_errors = conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(*scope.conditions(), runs.c.stop_reason == StopReason.LLM_ERROR.value)
    ).scalar_one()
    frame = stats.merge(fallbacks, on="model", how="outer")
    if llm_errors:
        frame = pd.concat(
            [frame, pd.DataFrame([{"model": NO_MODEL, "llm_errors": llm_errors}])],
            ignore_index=True,
        )
    for name in ("llm_errors", "fallbacks"):
        if name not in frame:
            frame[name] = 0
    frame["model"] = frame["model"].fillna("(unknown model)")
    frame = _ints(
        frame,
        [
            "calls",
            "invalid_replies",
            "llm_errors",
            "fallbacks",
            "prompt_tokens",
            "completion_tokens",
        ],
    )
    frame["errors"] = frame["invalid_replies"] + frame["llm_errors"]
    frame = _floats(frame, ["latency_p50_ms", "latency_p90_ms"])
    frame = _priced(frame, pricing)
    # The runs no model answered: nothing to price (their row has no tokens).
    frame["price_source"] = frame["price_source"].where(frame["model"] != NO_MODEL, "")
    frame = frame.sort_values(["calls", "model"], ascending=[False, True], ignore_index=True)
    return frame[
        [
            "model",
            "calls",
            "invalid_replies",
            "llm_errors",
            "errors",
            "fallbacks",
            "prompt_tokens",
            "completion_tokens",
            "tokens",
            "latency_p50_ms",
            "latency_p90_ms",
            "input_per_1k",
            "output_per_1k",
            "price_source",
            "cost_usd",
            "unpriced_tokens",
        ]
    ]


def _fallbacks_query(scope: Scope) -> sa.Select[Any]:
    """Answers given by a model after others failed (fallback_from set), per model."""
    data = events.c.data
    inner = (
        sa.select(data["model"].as_string().label("model"))
        .join_from(events, runs, runs.c.id == events.c.run_id)
        .where(
            events.c.event_type.in_([kind.value for kind in ANSWER_EVENTS]),
            scope.after_start(events.c.created_at),
            data["fallback_from"].as_string().is_not(None),
            *scope.conditions(),
        )
        .subquery()
    )
    return sa.select(inner.c.model, sa.func.count().label("fallbacks")).group_by(inner.c.model)


def _run_costs(scope: Scope, prices: Mapping[str, ModelPrice]) -> sa.Select[Any]:
    """Per run with LLM answers: tokens, cost_usd (of its priced tokens; NULL when none is
    priced) and unpriced_tokens, computed in SQL from the per-model prices."""
    answers = _answers(scope, "run_id", "model", "prompt_tokens", "completion_tokens")
    model = answers.c.model

    def per_token(index: int) -> sa.ColumnElement[Any]:
        if not prices:
            return sa.null()
        return sa.case(
            *(
                (model == name, sa.literal(price[index] / 1000, sa.Float))
                for name, price in prices.items()
            ),
            else_=sa.null(),
        )

    tokens = answers.c.prompt_tokens + answers.c.completion_tokens
    return sa.select(
        answers.c.run_id,
        sa.func.sum(tokens).label("tokens"),
        sa.func.sum(
            answers.c.prompt_tokens * per_token(0) + answers.c.completion_tokens * per_token(1)
        ).label("cost_usd"),
        sa.func.sum(sa.case((model.in_(list(prices)), 0), else_=tokens)).label("unpriced_tokens"),
    ).group_by(answers.c.run_id)


def _known_prices(conn: sa.Connection, scope: Scope, pricing: Pricing) -> dict[str, ModelPrice]:
    answers = _answers(scope, "model")
    models = conn.execute(sa.select(answers.c.model).distinct()).scalars().all()
    return {model: price for model in models if model and (price := pricing.price(model))}


def _cost_quantiles(dialect: str, costs: Any, *, portable: bool = False) -> sa.Select[Any]:
    """The cost per run over the runs whose every token is priced."""
    priced = (
        sa.select(costs.c.cost_usd)
        .where(costs.c.unpriced_tokens == 0, costs.c.cost_usd.is_not(None))
        .subquery("priced_runs")
    )
    return _quantiles(dialect, priced, ["cost_usd"], portable=portable)


def _cost_distribution(values: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "measure": "cost_usd",
                "label": "Cost per run",
                "unit": "USD",
                "runs": int(values["cost_usd_n"] or 0),
                "mean": _number(values["cost_usd_mean"]),
                "median": _number(values["cost_usd_p50"]),
                "p90": _number(values["cost_usd_p90"]),
            }
        ]
    ).astype({"mean": "float64", "median": "float64", "p90": "float64"})


DEAREST_COLUMNS = (
    "run_id",
    "run_number",
    "objective_id",
    "objective",
    "status",
    "created_at",
    "tokens",
    "cost_usd",
    "unpriced_tokens",
)


def _dearest(costs: Any, limit: int) -> sa.Select[Any]:
    """The `limit` dearest runs of `costs`, chosen before they are joined to their run and
    objective (a join per run in range otherwise)."""
    top = sa.select(costs).order_by(*_dearest_order(costs.c)).limit(limit).subquery("top")
    return (
        sa.select(
            runs.c.id.label("run_id"),
            runs.c.run_number,
            runs.c.objective_id,
            objectives.c.title.label("objective"),
            runs.c.status,
            runs.c.created_at,
            top.c.tokens,
            top.c.cost_usd,
            top.c.unpriced_tokens,
        )
        .join_from(top, runs, runs.c.id == top.c.run_id)
        .join(objectives, objectives.c.id == runs.c.objective_id)
        .order_by(*_dearest_order(top.c))
    )


def _dearest_order(columns: Any) -> tuple[sa.ColumnElement[Any], ...]:
    return (sa.func.coalesce(columns.cost_usd, -1.0).desc(), columns.tokens.desc(), columns.run_id)


def _dearest_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return _floats(_ints(frame, ["tokens", "unpriced_tokens"]), ["cost_usd"])


def _cost_per_run(
    conn: sa.Connection,
    scope: Scope,
    prices: Mapping[str, ModelPrice],
    *,
    portable: bool = False,
) -> pd.DataFrame:
    costs = _run_costs(scope, prices).subquery("run_costs")
    query = _cost_quantiles(conn.dialect.name, costs, portable=portable)
    return _cost_distribution(conn.execute(query).one()._mapping)


def _most_expensive_runs(
    conn: sa.Connection, scope: Scope, prices: Mapping[str, ModelPrice], limit: int
) -> pd.DataFrame:
    costs = _run_costs(scope, prices).subquery("run_costs")
    return _dearest_frame(_frame(conn, _dearest(costs, limit)))


def _run_cost_figures(
    conn: sa.Connection, scope: Scope, prices: Mapping[str, ModelPrice], limit: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """_cost_per_run and _most_expensive_runs in one statement: each run's cost is computed
    once (a CTE both parts read) instead of twice, the dearest runs joined to the one row
    of the distribution."""
    costs = _run_costs(scope, prices).cte("run_costs")
    stats = _cost_quantiles(conn.dialect.name, costs).subquery("stats")
    top = _dearest(costs, limit).subquery("dearest")
    query = (
        sa.select(stats, top)
        .select_from(stats.outerjoin(top, sa.true()))
        .order_by(*_dearest_order(top.c))
    )
    frame = _frame(conn, query)
    dearest = frame.loc[frame["run_id"].notna(), list(DEAREST_COLUMNS)].reset_index(drop=True)
    return _cost_distribution(frame.iloc[0]), _dearest_frame(dearest)


# --- tools, refusals, approvals, budgets, slow runs ----------------------------------------

CALL_COLUMNS = ("succeeded", "failed", "unknown", "denied", "rejected", "expired")


def _tools(conn: sa.Connection, scope: Scope) -> pd.DataFrame:
    """Per tool: its calls in each status and their durations, from one statement."""
    calls = (
        sa.select(
            tool_calls.c.tool_name.label("tool"), tool_calls.c.status, tool_calls.c.duration_ms
        )
        .join_from(tool_calls, runs, runs.c.id == tool_calls.c.run_id)
        .where(scope.after_start(tool_calls.c.created_at), *scope.conditions())
        .subquery("calls")
    )
    found = _frame(
        conn,
        _quantiles(
            conn.dialect.name,
            calls,
            ["duration_ms"],
            by=["tool"],
            extra=lambda c: tuple(
                sa.func.sum(sa.case((c.status == status.value, 1), else_=0)).label(status.value)
                for status in ToolCallStatus
            ),
            carry=["status"],
        ),
    )
    columns = [
        "tool",
        "calls",
        *CALL_COLUMNS,
        "in_flight",
        "not_succeeded",
        "failure_rate",
        "duration_p50_ms",
        "duration_p90_ms",
    ]
    if found.empty:
        return pd.DataFrame(columns=columns)
    frame = found[["tool", *(status.value for status in ToolCallStatus)]].copy()
    frame["calls"] = frame[[status.value for status in ToolCallStatus]].sum(axis=1)
    frame["in_flight"] = (
        frame[ToolCallStatus.STARTED.value] + frame[ToolCallStatus.AWAITING_APPROVAL.value]
    )
    frame["not_succeeded"] = frame[[status.value for status in FAILED_CALL_STATUSES]].sum(axis=1)
    frame = _ints(frame, ["calls", *CALL_COLUMNS, "in_flight", "not_succeeded"])
    frame["failure_rate"] = _rate(frame["not_succeeded"], frame["calls"] - frame["in_flight"])
    frame["duration_p50_ms"] = found["duration_ms_p50"]
    frame["duration_p90_ms"] = found["duration_ms_p90"]
    frame = _floats(frame, ["duration_p50_ms", "duration_p90_ms"])
    frame = frame.sort_values(["calls", "tool"], ascending=[False, True], ignore_index=True)
    return frame[columns]


def _denied_calls(tools: pd.DataFrame) -> pd.DataFrame:
    """The denied calls per tool, from _tools' table (the tools that had any)."""
    denied = tools.loc[tools["denied"] > 0, ["tool", "denied"]]
    return denied.rename(columns={"denied": "denied_calls"}).reset_index(drop=True)


def _tool_denials(conn: sa.Connection, scope: Scope) -> pd.DataFrame:
    return _frame(
        conn,
        sa.select(tool_calls.c.tool_name.label("tool"), sa.func.count().label("denied_calls"))
        .join_from(tool_calls, runs, runs.c.id == tool_calls.c.run_id)
        .where(
            scope.after_start(tool_calls.c.created_at),
            *scope.conditions(),
            tool_calls.c.status == ToolCallStatus.DENIED.value,
        )
        .group_by(tool_calls.c.tool_name),
    )


def _refusals(
    conn: sa.Connection, scope: Scope, denied_calls: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Refusals per tool; `denied_calls` (tool, denied_calls) when already counted."""
    if denied_calls is None:
        denied_calls = _tool_denials(conn, scope)
    refused = (
        sa.select(events.c.data["tool"].as_string().label("tool"))
        .join_from(events, runs, runs.c.id == events.c.run_id)
        .where(
            events.c.event_type == EventType.TOOL_DENIED.value,
            scope.after_start(events.c.created_at),
            *scope.conditions(),
        )
        .subquery()
    )
    denied_events = _frame(
        conn,
        sa.select(refused.c.tool, sa.func.count().label("tool_denied_events")).group_by(
            refused.c.tool
        ),
    )
    frame = denied_calls.merge(denied_events, on="tool", how="outer")
    frame["tool"] = frame["tool"].fillna("(unnamed tool)")
    frame = _ints(frame, ["denied_calls", "tool_denied_events"])
    frame = frame.sort_values(
        ["denied_calls", "tool_denied_events", "tool"],
        ascending=[False, False, True],
        ignore_index=True,
    )
    return frame[["tool", "denied_calls", "tool_denied_events"]]


APPROVAL_COLUMNS = (
    "requested",
    "approved",
    "rejected",
    "expired",
    "cancelled",
    "changed",
    "pending",
)


def _approvals(conn: sa.Connection, scope: Scope, now: datetime, *, by_tool: bool) -> pd.DataFrame:
    status = approvals.c.status
    waiting = sa.and_(status == ApprovalStatus.PENDING.value, approvals.c.expires_at > now)
    overdue = sa.and_(status == ApprovalStatus.PENDING.value, approvals.c.expires_at <= now)
    decided = status.in_([ApprovalStatus.APPROVED.value, ApprovalStatus.REJECTED.value])
    source = (
        sa.select(
            approvals.c.tool_name.label("tool"),
            sa.case((status == ApprovalStatus.APPROVED.value, 1), else_=0).label("is_approved"),
            sa.case((status == ApprovalStatus.REJECTED.value, 1), else_=0).label("is_rejected"),
            sa.case((sa.or_(status == ApprovalStatus.EXPIRED.value, overdue), 1), else_=0).label(
                "is_expired"
            ),
            sa.case((status == ApprovalStatus.CANCELLED.value, 1), else_=0).label("is_cancelled"),
            sa.case((approvals.c.original_args.is_not(None), 1), else_=0).label("is_changed"),
            sa.case((waiting, 1), else_=0).label("is_pending"),
            sa.case(
                (decided, _Millis(approvals.c.created_at, approvals.c.decided_at)), else_=sa.null()
            ).label("wait_ms"),
        )
        .join_from(approvals, runs, runs.c.id == approvals.c.run_id)
        .where(scope.after_start(approvals.c.created_at), *scope.conditions())
        .subquery("asked")
    )
    frame = _frame(
        conn,
        _quantiles(
            conn.dialect.name,
            source,
            ["wait_ms"],
            by=["tool"] if by_tool else [],
            extra=lambda c: (
                sa.func.count().label("requested"),
                *(
                    sa.func.coalesce(sa.func.sum(c[f"is_{name}"]), 0).label(name)
                    for name in APPROVAL_COLUMNS[1:]
                ),
            ),
            carry=[f"is_{name}" for name in APPROVAL_COLUMNS[1:]],
        ),
    )
    frame = frame.rename(
        columns={
            "wait_ms_p50": "wait_p50_ms",
            "wait_ms_p90": "wait_p90_ms",
            "wait_ms_mean": "wait_mean_ms",
        }
    )
    frame = _floats(
        _ints(frame, list(APPROVAL_COLUMNS)), ["wait_p50_ms", "wait_p90_ms", "wait_mean_ms"]
    )
    columns = [
        *(["tool"] if by_tool else []),
        *APPROVAL_COLUMNS,
        "wait_p50_ms",
        "wait_p90_ms",
        "wait_mean_ms",
    ]
    if by_tool:
        frame = frame.sort_values(["requested", "tool"], ascending=[False, True], ignore_index=True)
    return frame[columns]


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
    frame = _ints(_frame(conn, query), ["ended_runs", *reasons])
    frame["exhausted"] = frame[reasons].sum(axis=1).astype("int64")
    frame["share"] = _rate(frame["exhausted"], frame["ended_runs"])
    frame = frame[frame["exhausted"] > 0]
    frame = frame.sort_values(
        ["exhausted", "objective"], ascending=[False, True], ignore_index=True
    )
    return frame[["objective_id", "objective", "ended_runs", *reasons, "exhausted", "share"]]


def _slowest_runs(conn: sa.Connection, scope: Scope, limit: int) -> pd.DataFrame:
    query = (
        sa.select(
            runs.c.id.label("run_id"),
            runs.c.run_number,
            runs.c.objective_id,
            objectives.c.title.label("objective"),
            runs.c.status,
            runs.c.stop_reason,
            runs.c.created_at,
            runs.c.active_ms.label("duration_ms"),
            runs.c.steps_count.label("steps"),
            runs.c.tool_calls_count.label("tool_calls"),
            (runs.c.prompt_tokens + runs.c.completion_tokens).label("tokens"),
        )
        .join_from(runs, objectives, objectives.c.id == runs.c.objective_id)
        .where(*scope.conditions(), runs.c.active_ms > 0)
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


def _headline(
    conn: sa.Connection,
    scope: Scope,
    now: datetime,
    counts: pd.DataFrame,
    distributions: pd.DataFrame,
    by_model: pd.DataFrame,
) -> dict[str, Any]:
    status = counts["status"] if not counts.empty else pd.Series(dtype=object)
    count = counts["runs"] if not counts.empty else pd.Series(dtype="int64")

    def runs_in(*statuses: RunStatus) -> int:
        return int(count[status.isin([s.value for s in statuses])].sum())

    failed_call = sa.exists().where(
        tool_calls.c.run_id == runs.c.id,
        scope.after_start(tool_calls.c.created_at),
        tool_calls.c.status.in_(sorted(s.value for s in FAILED_CALL_STATUSES)),
    )
    completed_with_failures = conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(*scope.conditions(), runs.c.status == RunStatus.COMPLETED.value, failed_call)
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
            approvals.c.status == ApprovalStatus.PENDING.value,
            approvals.c.expires_at > now,
        )
    ).scalar_one()
    ended = runs_in(*ENDED)
    completed = runs_in(RunStatus.COMPLETED)
    duration = distributions.set_index("measure").loc["duration_ms"]
    return {
        "runs": int(count.sum()),
        "completed": completed,
        "failed": runs_in(RunStatus.FAILED),
        "cancelled": runs_in(RunStatus.CANCELLED),
        "skipped": runs_in(RunStatus.SKIPPED),
        "in_progress": runs_in(*IN_PROGRESS),
        "ended": ended,
        "success_rate": completed / ended if ended else None,
        "completed_with_failed_calls": int(completed_with_failures),
        "tokens": int(tokens),
        "cost_usd": _total_cost(by_model),
        "unpriced_tokens": int(by_model["unpriced_tokens"].sum()),
        "median_duration_ms": _number(duration["median"]),
        "approvals_waiting": int(waiting),
    }


def _total_cost(by_model: pd.DataFrame) -> float | None:
    """The cost of the priced tokens; None ("no price") when there are tokens and none of
    them is priced; 0 when no model was called at all."""
    costs = by_model["cost_usd"]
    if costs.notna().any():
        return float(costs.sum())
    return None if int(by_model["tokens"].sum()) else 0.0


def _cost_by_objective(priced: pd.DataFrame, objective_runs: pd.DataFrame) -> pd.DataFrame:
    frame = objective_runs.merge(_cost_by(priced, ["objective_id"]), on="objective_id", how="left")
    frame = _ints(frame, ["tokens", "unpriced_tokens"])
    frame["cost_usd"] = frame["cost_usd"].astype("float64")
    frame["cost_per_run_usd"] = _rate(frame["cost_usd"], frame["runs"])
    frame = frame.sort_values(
        ["cost_usd", "tokens"], ascending=False, na_position="last", ignore_index=True
    )
    return frame[
        [
            "objective_id",
            "objective",
            "runs",
            "tokens",
            "cost_usd",
            "unpriced_tokens",
            "cost_per_run_usd",
        ]
    ]


# --- public: each figure alone, or all of them at once ---------------------------------------


def _now(source: Source) -> datetime:
    return source.now() if isinstance(source, Store) else datetime.now(UTC)


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


def _days_of_cost(priced: pd.DataFrame, scope: Scope, now: datetime) -> pd.DataFrame:
    frame = _cost_by(priced, ["day"])
    frame["day"] = pd.to_datetime(frame["day"])
    frame = _fill_days(frame, scope, now, ["tokens", "unpriced_tokens"])
    return _ints(frame, ["tokens", "unpriced_tokens"])[
        ["day", "tokens", "cost_usd", "unpriced_tokens"]
    ]


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
        }
        headline = _headline(conn, scope, now, counts, distributions, by_model)
    tables["cost_by_objective"] = _cost_by_objective(priced, objective_runs)
    return Analytics(
        since=scope.since,
        until=scope.until,
        objective_id=scope.objective_id,
        headline=headline,
        tables={name: tables[name] for name in TABLES},
    )


# --- a report: JSON-ready values, and the same in words for a terminal -------------------


_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """The start of a report's range: `7d`, `24h`, `30m` or `2w` before now, or a date
    (`2026-11-01`, midnight UTC) or a time (`2026-11-01T08:00`, UTC unless it says otherwise).
    ValueError with one sentence otherwise."""
    now = now or datetime.now(UTC)
    value = str(text).strip()
    relative = _RELATIVE.match(value)
    if relative:
        amount = int(relative.group(1))
        if amount > 0:
            unit = _UNITS[relative.group(2).lower()]
            try:
                return now - timedelta(**{unit: amount})
            except OverflowError:
                pass
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None:
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            if moment <= now:
                return moment.astimezone(UTC)
            raise ValueError(f"--since {value} is in the future: give a past date such as 7d")
    raise ValueError(
        f"--since must be a duration such as 7d, 24h or 30m, or a date such as 2026-11-01, "
        f"not {value!r}"
    )


def format_cost(usd: float | None) -> str:
    """USD as people read it ($12.34, $0.0123 for small amounts), or "no price"."""
    if usd is None or (isinstance(usd, float) and math.isnan(usd)):
        return NO_PRICE
    if abs(usd) >= 0.1 or usd == 0:
        return f"${usd:,.2f}"
    digits = f"{usd:.6f}".rstrip("0")  # a fraction of a cent: its significant digits
    return "less than $0.000001" if float(digits) == 0 else f"${digits}"


def format_share(share: float | None) -> str:
    """A share as a percentage (85%), or "-" when there is nothing to divide."""
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return "-"
    return f"{share * 100:.0f}%"


def _plain(value: Any) -> Any:
    """A DataFrame cell as a JSON-ready value (NaN -> None, Timestamp -> ISO 8601)."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        moment = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
        return moment.date().isoformat() if _is_midnight_day(value) else moment.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _is_midnight_day(value: Any) -> bool:
    return isinstance(value, pd.Timestamp) and value.tzinfo is None and value == value.normalize()


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as a list of JSON-ready rows."""
    return [
        {str(name): _plain(value) for name, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def report(
    store: Source,
    *,
    since: datetime,
    until: datetime | None = None,
    objective_id: str | None = None,
    prices: Prices = None,
) -> dict[str, Any]:
    """Every figure of `analyze` as plain JSON-ready values: the range, `headline`, and each
    table of TABLES as a list of rows (`approvals` as one object). `prices`: the
    AGENT_MODEL_PRICES overrides; None reads them from the settings."""
    found = analyze(store, since=since, until=until, objective_id=objective_id, prices=prices)
    tables: dict[str, Any] = {name: records(frame) for name, frame in found.tables.items()}
    tables["approvals"] = tables["approvals"][0] if tables["approvals"] else {}
    return {
        "since": found.since.isoformat(),
        "until": found.until.isoformat() if found.until else None,
        "objective_id": found.objective_id,
        "headline": {name: _plain(value) for name, value in found.headline.items()},
        **tables,
    }


def report_text(report: Mapping[str, Any]) -> str:
    """A report (as `report` returns it) in words for a terminal: units on every number,
    "no price" where a model's price is unknown."""
    head = report["headline"]
    lines: list[str] = []
    span = f"from {report['since'][:16].replace('T', ' ')} UTC"
    if report.get("until"):
        span += f" to {report['until'][:16].replace('T', ' ')} UTC"
    scope = (
        f"objective {report['objective_id']}" if report.get("objective_id") else "all objectives"
    )
    lines.append(f"Run analytics {span}, {scope}")
    lines.append("")
    if not head["runs"]:
        lines.append("No run was created in this range.")
        return "\n".join(lines) + "\n"
    lines.append(
        f"Runs: {_count(head['runs'], 'run')} ({head['completed']:,} completed, "
        f"{head['failed']:,} failed, {head['cancelled']:,} cancelled, "
        f"{head['skipped']:,} skipped, {head['in_progress']:,} in progress)"
    )
    success = f"Success rate: {format_share(head['success_rate'])}"
    if head["ended"]:
        success += f" of the {_count(head['ended'], 'run')} that ended"
    if head["completed_with_failed_calls"]:
        success += (
            f" ({_count(head['completed_with_failed_calls'], 'completed run')} had tool calls "
            "that did not succeed)"
        )
    lines.append(success)
    cost = f"Cost: {format_cost(head['cost_usd'])} for {_count(head['tokens'], 'token')}"
    if head["unpriced_tokens"]:
        cost += f" ({_count(head['unpriced_tokens'], 'token')} had no price)"
    lines.append(cost)
    lines.append(
        f"Median time working per run: {format_duration(head['median_duration_ms'])}; "
        f"approvals waiting: {head['approvals_waiting']:,}"
    )

    lines += ["", "Per run (runs that ended)    median      p90      mean"]
    for row in report["run_distributions"]:
        values = [_measure(row[key], row["unit"]) for key in ("median", "p90", "mean")]
        label = f"  {row['label']} ({_count(row['runs'], 'run')})"
        lines.append(f"{label:<30}{values[0]:>9}{values[1]:>9}{values[2]:>10}")

    lines += ["", "Why runs ended"]
    for row in report["stop_reasons"]:
        lines.append(
            f"  {_count(row['runs'], 'run')} ({format_share(row['share'])}): {row['sentence']}"
        )

    lines += ["", "Models"]
    for row in report["models"]:
        if row["model"] == NO_MODEL:
            lines.append(f"  {_count(row['llm_errors'], 'run')} ended with no model answering")
            continue
        latency = (
            f"latency {format_duration(row['latency_p50_ms'])} median, "
            f"{format_duration(row['latency_p90_ms'])} p90"
        )
        lines.append(
            f"  {row['model']}: {_count(row['calls'], 'call')}, "
            f"{_count(row['invalid_replies'], 'invalid reply', 'invalid replies')}, "
            f"{_count(row['fallbacks'], 'fallback')}, {_count(row['tokens'], 'token')}, "
            f"{latency}, cost {format_cost(row['cost_usd'])}"
        )

    lines += ["", "Cost by objective"]
    for row in report["cost_by_objective"]:
        text = (
            f"  {row['objective']}: {format_cost(row['cost_usd'])} over "
            f"{_count(row['runs'], 'run')} ({format_cost(row['cost_per_run_usd'])} per run)"
        )
        if row["unpriced_tokens"]:
            text += f", {_count(row['unpriced_tokens'], 'token')} with no price"
        lines.append(text)

    lines += ["", "Tools"]
    for row in report["tools"]:
        lines.append(
            f"  {row['tool']}: {_count(row['calls'], 'call')}, {row['not_succeeded']:,} did not "
            f"succeed ({format_share(row['failure_rate'])})"
            + (
                f", {format_duration(row['duration_p50_ms'])} median"
                if row["duration_p50_ms"] is not None
                else ""
            )
        )
    if report["refusals"]:
        lines += ["", "Refused by policy"]
        for row in report["refusals"]:
            lines.append(f"  {row['tool']}: {_count(row['denied_calls'], 'call')}")

    asked = report["approvals"]
    if asked.get("requested"):
        lines += [
            "",
            f"Approvals: {asked['requested']:,} requested: {asked['approved']:,} approved "
            f"({asked['changed']:,} with changes), {asked['rejected']:,} rejected, "
            f"{asked['expired']:,} expired, {asked['pending']:,} waiting"
            + (
                f"; decided in {format_duration(asked['wait_p50_ms'])} (median), "
                f"{format_duration(asked['wait_p90_ms'])} (p90)"
                if asked["wait_p50_ms"] is not None
                else ""
            ),
        ]

    if report["budgets_exhausted"]:
        lines += ["", "Budgets exhausted"]
        for row in report["budgets_exhausted"]:
            kinds = ", ".join(
                f"{reason.removeprefix('budget_').replace('_', ' ')} {row[reason]:,}"
                for reason in (r.value for r in BUDGET_REASONS)
                if row[reason]
            )
            lines.append(
                f"  {row['objective']}: {_count(row['exhausted'], 'run')} of "
                f"{row['ended_runs']:,} ({kinds})"
            )

    lines += ["", "Slowest runs"]
    for row in report["slowest_runs"]:
        lines.append(
            f"  Run #{row['run_number']} · {row['objective']}: "
            f"{format_duration(row['duration_ms'])}  ({row['run_id']})"
        )
    lines += ["", "Most expensive runs"]
    for row in report["most_expensive_runs"]:
        text = f"  Run #{row['run_number']} · {row['objective']}: {format_cost(row['cost_usd'])}"
        if row["unpriced_tokens"] and row["cost_usd"] is None:
            text += f" ({_count(row['unpriced_tokens'], 'token')})"
        elif row["unpriced_tokens"]:
            text += f" + {_count(row['unpriced_tokens'], 'token')} with no price"
        lines.append(f"{text}  ({row['run_id']})")
    return "\n".join(lines) + "\n"


def _count(number: float | None, one: str, many: str | None = None) -> str:
    amount = int(number or 0)
    return f"{amount:,} {one if amount == 1 else (many or one + 's')}"


def _measure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return format_duration(value)
    if unit == "USD":
        return format_cost(value)
    return f"{value:,.1f}".removesuffix(".0")
