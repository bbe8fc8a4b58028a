"""Cost: of each run (its distribution and the dearest runs), per objective and per day."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.filters import Scope
from agent_core.analytics.llm import _answers, _cost_by
from agent_core.analytics.runs import _fill_days, _run_naming
from agent_core.analytics.sql import _floats, _frame, _ints, _number, _quantiles, _rate
from agent_core.prices import ModelPrice, Pricing
from agent_core.store.schema import objectives, runs


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
            *_run_naming(),
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


def _days_of_cost(priced: pd.DataFrame, scope: Scope, now: datetime) -> pd.DataFrame:
    frame = _cost_by(priced, ["day"])
    frame["day"] = pd.to_datetime(frame["day"])
    frame = _fill_days(frame, scope, now, ["tokens", "unpriced_tokens"])
    return _ints(frame, ["tokens", "unpriced_tokens"])[
        ["day", "tokens", "cost_usd", "unpriced_tokens"]
    ]
