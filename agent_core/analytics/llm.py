"""LLM answers: per model (calls, invalid replies, fallbacks, latency) and their tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.filters import NO_MODEL, NO_PRICE, Scope
from agent_core.analytics.sql import _Day, _floats, _frame, _ints, _quantiles
from agent_core.events import EventType
from agent_core.models import StopReason
from agent_core.prices import ModelPrice, Pricing
from agent_core.store.schema import events, runs, steps

# The events that carry the LLM facts of an answer (model, tokens, latency, fallback_from):
# each answer is in exactly one of them.
ANSWER_EVENTS = (
    EventType.STEP_COMPLETED,
    EventType.STEP_STARTED,
    EventType.APPROVAL_REQUESTED,
    EventType.STEP_ERROR,
)


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
    fallbacks = _frame(conn, _fallbacks_query(scope))
    llm_errors = conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(*scope.conditions(), runs.c.stop_reason == StopReason.LLM_ERROR.value)
    ).scalar_one()
    return _models_table(stats, fallbacks, int(llm_errors), pricing)


def _models_table(
    stats: pd.DataFrame, fallbacks: pd.DataFrame, llm_errors: int, pricing: Pricing
) -> pd.DataFrame:
    """Per model `stats` (model, calls, invalid_replies, prompt_tokens, completion_tokens,
    latency_ms_p50, latency_ms_p90), `fallbacks` (model, fallbacks) and the runs no model
    answered (llm_errors) as the models table, priced."""
    stats = stats.rename(
        columns={"latency_ms_p50": "latency_p50_ms", "latency_ms_p90": "latency_p90_ms"}
    )
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
    inner = _fallback_answers(scope)
    return sa.select(inner.c.model, sa.func.count().label("fallbacks")).group_by(inner.c.model)


def _fallback_answers(scope: Scope, *more: sa.ColumnElement[Any]) -> sa.Subquery:
    """The model of each answer given after others failed, with `more` columns ahead."""
    data = events.c.data
    return (
        sa.select(*more, data["model"].as_string().label("model"))
        .join_from(events, runs, runs.c.id == events.c.run_id)
        .where(
            events.c.event_type.in_([kind.value for kind in ANSWER_EVENTS]),
            scope.after_start(events.c.created_at),
            data["fallback_from"].as_string().is_not(None),
            *scope.conditions(),
        )
        .subquery()
    )
