"""The figures of some runs in a form that adds up: a Summary.

Counts and sums add up across days; a median does not. So a Summary keeps, per UTC day (of
the run's creation) and objective:

- tallies: a count and a total per measure and key (runs per status and stop reason with
  their tokens, LLM answers and tokens per model, tool calls per tool and status, ...);
- samples: every value a percentile is taken over (run durations, LLM latencies, tool
  durations, approval waits), so that the percentiles of any set of days are exact:
  PostgreSQL's percentile_cont, as the SQL figures compute it;
- usage: each run's prompt and completion tokens per model, priced when read (`run_costs`),
  so that a summary holds whatever the prices: the cost per run and the dearest runs;
- the top runs: each day's TOP_RUNS slowest (the slowest of a range are among them).

`summarize` computes one from the runs of a Scope, in a fixed number of statements whatever
the number of runs; a closed day's is stored once (daybook), and a range's figures are then
read from the stored days plus `summarize` of what no stored day covers (its edges, today).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.approvals import APPROVAL_COLUMNS, _asked
from agent_core.analytics.filters import ENDED, TOP_RUNS, Scope
from agent_core.analytics.llm import _answers, _fallback_answers
from agent_core.analytics.sql import _Day, _frame
from agent_core.analytics.tools import _denied_events, failed_call
from agent_core.models import RunStatus
from agent_core.prices import Pricing
from agent_core.store.schema import runs, tool_calls

Key = str | None
SampleKey = tuple[str, str, Key]  # objective_id, measure, key

TALLY_COLUMNS = ["day", "objective_id", "measure", "key", "key2", "count", "total"]
TOP_COLUMNS = ["day", "objective_id", "run_id", "value"]  # value: the run's active_ms

# Tallies: measure -> what key and key2 are.
RUNS = "runs"  # status, stop_reason; count of runs, total of their tokens
COMPLETED_WITH_FAILED_CALLS = "completed_with_failed_calls"
CALLS = "calls"  # model: valid answers
INVALID_REPLIES = "invalid_replies"  # model
PROMPT_TOKENS = "prompt_tokens"  # model (total)
COMPLETION_TOKENS = "completion_tokens"  # model (total)
FALLBACKS = "fallbacks"  # model
TOOL_CALLS = "tool_calls"  # tool, status
TOOL_DENIED_EVENTS = "tool_denied_events"  # tool
APPROVALS = "approvals"  # tool, one of APPROVAL_COLUMNS

# Samples: (measure, key) -> values.
RUN_MEASURES = ("steps", "tool_calls", "duration_ms", "tokens")  # key None; ended runs
LATENCY = "latency_ms"  # model
TOOL_DURATION = "tool_duration_ms"  # tool
WAIT = "wait_ms"  # tool


@dataclass
class Usage:
    """Tokens per run and model (a row each): `run` indexes `run_ids`, a function that
    names the runs asked for (a stored day names only those a table shows)."""

    run_ids: Callable[[Sequence[int]], list[str]]
    run: np.ndarray  # int64
    objective: np.ndarray  # object: each row's objective id
    model: np.ndarray  # object: str, or None
    prompt: np.ndarray  # float64
    completion: np.ndarray  # float64


@dataclass
class Summary:
    """Tallies and top runs per day and objective (TALLY_COLUMNS, TOP_COLUMNS), the samples
    per objective, measure and key as arrays of float64 (in pieces until `values` joins
    them), and the tokens of each run per model. Complete once built: the views `measure`
    and `values` give are made on first use."""

    tallies: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TALLY_COLUMNS))
    top: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TOP_COLUMNS))
    samples: dict[SampleKey, list[np.ndarray]] = field(default_factory=dict)
    usage: list[Usage] = field(default_factory=list)
    # Built on first use, once the Summary is complete: tallies per measure, samples per
    # (measure, key) whatever the objective.
    _measures: dict[str, pd.DataFrame] | None = field(default=None, repr=False)
    _pieces: dict[tuple[str, Key], list[np.ndarray]] | None = field(default=None, repr=False)

    def values(self, measure: str, key: Key = None, *, any_key: bool = False) -> np.ndarray:
        """The samples of `measure` for `key` (or for every key), as one array."""
        if self._pieces is None:
            self._pieces = {}
            for (_, name, found), pieces in self.samples.items():
                self._pieces.setdefault((name, found), []).extend(pieces)
        if any_key:
            parts = [
                p for (name, _), pieces in self._pieces.items() if name == measure for p in pieces
            ]
        else:
            parts = self._pieces.get((measure, key), [])
        return np.concatenate(parts) if parts else np.empty(0)

    def measure(self, name: str) -> pd.DataFrame:
        """The tallies of one measure (every day and objective)."""
        if self._measures is None:
            self._measures = {
                str(found): frame for found, frame in self.tallies.groupby("measure", sort=False)
            }
        return self._measures.get(name, self.tallies.iloc[0:0])

    def add_samples(self, frame: pd.DataFrame, measure: str, column: str, by: str | None) -> None:
        """The values of `column` per objective (and per `by`) as samples of `measure`."""
        keys = ["objective_id", by] if by else ["objective_id"]
        for found, values in frame.groupby(keys, dropna=False, sort=False)[column]:
            objective_id, key = (found[0], _key(found[1])) if by else (found[0], None)
            array = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            array = array[~np.isnan(array)]
            if array.size:
                self.samples.setdefault((objective_id, measure, key), []).append(array)


def combine(parts: Iterable[Summary]) -> Summary:
    """One Summary of several (days stored, and what they do not cover)."""
    parts = list(parts)
    combined = Summary()
    tallies = [part.tallies for part in parts if not part.tallies.empty]
    tops = [part.top for part in parts if not part.top.empty]
    if tallies:
        combined.tallies = pd.concat(tallies, ignore_index=True)
    if tops:
        combined.top = pd.concat(tops, ignore_index=True)
    for part in parts:
        for key, pieces in part.samples.items():
            combined.samples.setdefault(key, []).extend(pieces)
        combined.usage.extend(part.usage)
    return combined


def quantiles(values: np.ndarray, name: str) -> dict[str, float | int | None]:
    """`{name}_n`, `_mean`, `_p50`, `_p90` of values, as the SQL figures name them;
    percentiles by linear interpolation between the nearest ranks (percentile_cont)."""
    if not values.size:
        return {f"{name}_n": 0, f"{name}_mean": None, f"{name}_p50": None, f"{name}_p90": None}
    p50, p90 = np.percentile(values, [50, 90], method="linear")
    return {
        f"{name}_n": int(values.size),
        f"{name}_mean": float(values.mean()),
        f"{name}_p50": float(p50),
        f"{name}_p90": float(p90),
    }


def summarize(conn: sa.Connection, scope: Scope, now: datetime) -> Summary:
    """The Summary of the runs in scope, read in seven statements."""
    summary = Summary()
    tallies: list[pd.DataFrame] = []
    tops: list[pd.DataFrame] = []
    _runs_part(conn, scope, summary, tallies, tops)
    _answers_part(conn, scope, summary, tallies)
    tallies.append(_counted(conn, _fallbacks_by_day(scope), FALLBACKS))
    tallies.append(_counted(conn, _failed_calls_by_day(scope), COMPLETED_WITH_FAILED_CALLS))
    _tools_part(conn, scope, summary, tallies)
    tallies.append(_counted(conn, _denied_by_day(scope), TOOL_DENIED_EVENTS))
    _approvals_part(conn, scope, now, summary, tallies)
    found = [frame for frame in tallies if not frame.empty]
    if found:
        summary.tallies = pd.concat(found, ignore_index=True)[TALLY_COLUMNS]
    found_tops = [frame for frame in tops if not frame.empty]
    if found_tops:
        summary.top = pd.concat(found_tops, ignore_index=True)[TOP_COLUMNS]
    return summary


def _tally(
    frame: pd.DataFrame,
    measure: str,
    keys: list[str],
    *,
    count: str | None = None,
    total: str | None = None,
) -> pd.DataFrame:
    """Rows of `frame` grouped by day, objective_id and `keys` (key, key2): the number of
    rows (or the sum of `count`) and the sum of `total`."""
    if frame.empty:
        return pd.DataFrame(columns=TALLY_COLUMNS)
    by = ["day", "objective_id", *keys]
    grouped = frame.groupby(by, dropna=False, sort=False)
    counted = grouped[count].sum() if count else grouped.size()
    result = counted.rename("count").reset_index()
    result["total"] = grouped[total].sum().to_numpy() if total else 0
    result = result.rename(columns=dict(zip(keys, ["key", "key2"], strict=False)))
    if "key" not in result:
        result["key"] = None
    if "key2" not in result:
        result["key2"] = None
    result["measure"] = measure
    return result[TALLY_COLUMNS]


def _none(frame: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """Missing values as None (a key read from JSON, or absent), not NaN."""
    for name in names:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _runs_part(
    conn: sa.Connection,
    scope: Scope,
    summary: Summary,
    tallies: list[pd.DataFrame],
    tops: list[pd.DataFrame],
) -> None:
    query = sa.select(
        _Day(runs.c.created_at).label("day"),
        runs.c.objective_id,
        runs.c.id.label("run_id"),
        runs.c.status,
        runs.c.stop_reason,
        runs.c.steps_count.label("steps"),
        runs.c.tool_calls_count.label("tool_calls"),
        runs.c.active_ms.label("duration_ms"),
        (runs.c.prompt_tokens + runs.c.completion_tokens).label("tokens"),
    ).where(*scope.conditions())
    frame = _none(_frame(conn, query), ["stop_reason"])
    tallies.append(_tally(frame, RUNS, ["status", "stop_reason"], total="tokens"))
    ended = frame[frame["status"].isin([status.value for status in ENDED])]
    for name in RUN_MEASURES:
        summary.add_samples(ended, name, name, None)
    working = frame[frame["duration_ms"].fillna(0) > 0].assign(value=frame["duration_ms"])
    if not working.empty:  # each day and objective's TOP_RUNS slowest, as first_of orders
        ordered = working.sort_values(["value", "run_id"], ascending=[False, True])
        tops.append(ordered.groupby(["day", "objective_id"], sort=False).head(TOP_RUNS))


def _answers_part(
    conn: sa.Connection, scope: Scope, summary: Summary, tallies: list[pd.DataFrame]
) -> None:
    """Answers per model (calls, invalid replies, tokens), their latencies, and the tokens
    of each run per model."""
    answers = _answers(
        scope,
        "run_id",
        "day",
        "objective_id",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "invalid",
    )
    frame = _none(_frame(conn, sa.select(answers)), ["model"])
    if frame.empty:
        return
    frame["valid"] = 1 - frame["invalid"]
    for measure, count, total in (
        (CALLS, "valid", None),
        (INVALID_REPLIES, "invalid", None),
        (PROMPT_TOKENS, None, "prompt_tokens"),
        (COMPLETION_TOKENS, None, "completion_tokens"),
    ):
        tallies.append(_tally(frame, measure, ["model"], count=count, total=total))
    summary.add_samples(frame, LATENCY, "latency_ms", "model")
    per_run = (
        frame.groupby(["run_id", "objective_id", "model"], dropna=False, sort=False)[
            ["prompt_tokens", "completion_tokens"]
        ]
        .sum()
        .reset_index()
    )
    run_codes, run_ids = pd.factorize(per_run["run_id"])
    summary.usage.append(
        Usage(
            run_ids=lambda wanted, ids=list(run_ids): [ids[index] for index in wanted],
            run=run_codes.astype("int64"),
            objective=per_run["objective_id"].to_numpy(dtype=object),
            model=np.array([_key(model) for model in per_run["model"]], dtype=object),
            prompt=per_run["prompt_tokens"].to_numpy(dtype="float64"),
            completion=per_run["completion_tokens"].to_numpy(dtype="float64"),
        )
    )


def _key(value: Any) -> Key:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def _counted(conn: sa.Connection, query: sa.Select[Any], measure: str) -> pd.DataFrame:
    """A query of (day, objective_id[, key], count) as tallies of `measure`."""
    frame = _frame(conn, query)
    if frame.empty:
        return pd.DataFrame(columns=TALLY_COLUMNS)
    if "key" not in frame:
        frame["key"] = None
    frame = _none(frame, ["key"])
    frame["key2"] = None
    frame["total"] = 0
    frame["measure"] = measure
    return frame[TALLY_COLUMNS]


def _fallbacks_by_day(scope: Scope) -> sa.Select[Any]:
    inner = _fallback_answers(scope, _Day(runs.c.created_at).label("day"), runs.c.objective_id)
    return sa.select(
        inner.c.day,
        inner.c.objective_id,
        inner.c.model.label("key"),
        sa.func.count().label("count"),
    ).group_by(inner.c.day, inner.c.objective_id, inner.c.model)


def _failed_calls_by_day(scope: Scope) -> sa.Select[Any]:
    day = _Day(runs.c.created_at)
    return (
        sa.select(day.label("day"), runs.c.objective_id, sa.func.count().label("count"))
        .where(*scope.conditions(), runs.c.status == RunStatus.COMPLETED.value, failed_call(scope))
        .group_by(day, runs.c.objective_id)
    )


def _denied_by_day(scope: Scope) -> sa.Select[Any]:
    inner = _denied_events(scope, _Day(runs.c.created_at).label("day"), runs.c.objective_id)
    return sa.select(
        inner.c.day, inner.c.objective_id, inner.c.tool.label("key"), sa.func.count().label("count")
    ).group_by(inner.c.day, inner.c.objective_id, inner.c.tool)


def _tools_part(
    conn: sa.Connection, scope: Scope, summary: Summary, tallies: list[pd.DataFrame]
) -> None:
    query = (
        sa.select(
            _Day(runs.c.created_at).label("day"),
            runs.c.objective_id,
            tool_calls.c.tool_name.label("tool"),
            tool_calls.c.status,
            tool_calls.c.duration_ms,
        )
        .join_from(tool_calls, runs, runs.c.id == tool_calls.c.run_id)
        .where(scope.after_start(tool_calls.c.created_at), *scope.conditions())
    )
    frame = _frame(conn, query)
    if frame.empty:
        return
    tallies.append(_tally(frame, TOOL_CALLS, ["tool", "status"]))
    summary.add_samples(frame, TOOL_DURATION, "duration_ms", "tool")


def _approvals_part(
    conn: sa.Connection,
    scope: Scope,
    now: datetime,
    summary: Summary,
    tallies: list[pd.DataFrame],
) -> None:
    asked = _asked(scope, now, _Day(runs.c.created_at).label("day"), runs.c.objective_id)
    frame = _frame(conn, sa.select(asked))
    if frame.empty:
        return
    flags = APPROVAL_COLUMNS[1:]
    long = frame.melt(
        id_vars=["day", "objective_id", "tool"],
        value_vars=[f"is_{name}" for name in flags],
        var_name="flag",
        value_name="hits",
    )
    long["flag"] = long["flag"].str.removeprefix("is_")
    requested = frame.assign(flag=APPROVAL_COLUMNS[0], hits=1)
    every = pd.concat([requested[long.columns], long], ignore_index=True)
    tallies.append(_tally(every, APPROVALS, ["tool", "flag"], count="hits"))
    summary.add_samples(frame, WAIT, "wait_ms", "tool")


def run_costs(usage: Iterable[Usage], pricing: Pricing) -> tuple[np.ndarray, pd.DataFrame]:
    """The cost of each run whose every token is priced, and the TOP_RUNS dearest runs
    (run_id, tokens, cost_usd, unpriced_tokens): cost_usd sums the priced tokens' cost (NaN
    when none is priced), dearest first, then most tokens, then by id; what the SQL figures
    compute (cost._run_costs) from the same tokens."""
    costs: list[np.ndarray] = []
    found: list[pd.DataFrame] = []
    for part in usage:
        cost, tokens, unpriced = _priced_runs(part, pricing)
        ran = ~np.isnan(tokens)
        costs.append(cost[ran & (unpriced == 0) & ~np.isnan(cost)])
        rank = np.nan_to_num(cost, nan=-1.0)
        candidates = np.flatnonzero(ran)
        if candidates.size > TOP_RUNS:  # the TOP_RUNS dearest, their ties included
            threshold = np.sort(rank[candidates])[-TOP_RUNS]
            candidates = candidates[rank[candidates] >= threshold]
        found.append(
            pd.DataFrame(
                {
                    "run_id": part.run_ids(candidates.tolist()),
                    "tokens": tokens[candidates],
                    "cost_usd": cost[candidates],
                    "unpriced_tokens": unpriced[candidates],
                    "rank": rank[candidates],
                }
            )
        )
    every = np.concatenate(costs) if costs else np.empty(0)
    if not found:
        return every, pd.DataFrame(columns=["run_id", "tokens", "cost_usd", "unpriced_tokens"])
    dearest = pd.concat(found, ignore_index=True).sort_values(
        ["rank", "tokens", "run_id"], ascending=[False, False, True], kind="stable"
    )
    return every, dearest.head(TOP_RUNS).drop(columns="rank").reset_index(drop=True)


def _priced_runs(part: Usage, pricing: Pricing) -> tuple[np.ndarray, ...]:
    """Per run of the part: cost (NaN without a priced token), tokens (NaN for an index
    with no row) and unpriced tokens."""
    codes, models = pd.factorize(part.model, use_na_sentinel=True)
    prices = [pricing.price(model) if isinstance(model, str) else None for model in models]
    per_input = np.array([p.input_per_1k / 1000 if p else np.nan for p in prices] + [np.nan])
    per_output = np.array([p.output_per_1k / 1000 if p else np.nan for p in prices] + [np.nan])
    size = int(part.run.max()) + 1 if part.run.size else 0
    tokens = part.prompt + part.completion
    priced = ~np.isnan(per_input[codes])
    spent = np.where(
        priced, part.prompt * per_input[codes] + part.completion * per_output[codes], 0
    )
    cost = np.bincount(part.run, weights=spent, minlength=size)
    cost[np.bincount(part.run, weights=priced, minlength=size) == 0] = np.nan
    total = np.bincount(part.run, weights=tokens, minlength=size)
    total[np.bincount(part.run, minlength=size) == 0] = np.nan
    unpriced = np.bincount(part.run, weights=np.where(priced, 0, tokens), minlength=size)
    return cost, total, unpriced


def first_of(top: pd.DataFrame, limit: int) -> list[str]:
    """The ids of the `limit` slowest runs among the top runs of several days (the longest
    at work first, then by id, as the SQL figures order them)."""
    ordered = heapq.nsmallest(
        limit, zip(-top["value"].astype("float64"), top["run_id"], strict=True)
    )
    return [run_id for _, run_id in ordered]
