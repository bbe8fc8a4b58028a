"""Tools, refusals by policy, approvals, budgets exhausted, slow runs and the headline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.llm import (
    _cost_by,
)
from agent_core.analytics.scope import (
    BUDGET_REASONS,
    ENDED,
    IN_PROGRESS,
    Scope,
)
from agent_core.analytics.sql import (
    _floats,
    _frame,
    _ints,
    _Millis,
    _number,
    _quantiles,
    _rate,
)
from agent_core.events import EventType
from agent_core.models import (
    FAILED_CALL_STATUSES,
    ApprovalStatus,
    RunStatus,
    ToolCallStatus,
)
from agent_core.store.schema import approvals, events, objectives, runs, tool_calls

CALL_COLUMNS = ("succeeded", "failed", "unknown", "denied", "rejected", "expired")


def _tools(conn: sa.Connection, scope: Scope) -> pd.DataFrame:
    calls = (
        sa.select(
            tool_calls.c.tool_name.label("tool"), tool_calls.c.status, tool_calls.c.duration_ms
        )
        .join_from(tool_calls, runs, runs.c.id == tool_calls.c.run_id)
        .where(*scope.conditions())
        .subquery("calls")
    )
    by_status = _frame(
        conn,
        sa.select(calls.c.tool, calls.c.status, sa.func.count().label("calls")).group_by(
            calls.c.tool, calls.c.status
        ),
    )
    durations = _frame(conn, _quantiles(conn.dialect.name, calls, ["duration_ms"], by=["tool"]))
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
    if by_status.empty:
        return pd.DataFrame(columns=columns)
    table = by_status.pivot_table(
        index="tool", columns="status", values="calls", aggfunc="sum", fill_value=0
    )
    frame = pd.DataFrame(index=table.index)
    for status in ToolCallStatus:
        frame[status.value] = table.get(status.value, 0)
    frame["calls"] = frame.sum(axis=1)
    frame["in_flight"] = (
        frame[ToolCallStatus.STARTED.value] + frame[ToolCallStatus.AWAITING_APPROVAL.value]
    )
    frame["not_succeeded"] = frame[[status.value for status in FAILED_CALL_STATUSES]].sum(axis=1)
    frame = frame.reset_index().rename(columns={"index": "tool"})
    frame = _ints(frame, ["calls", *CALL_COLUMNS, "in_flight", "not_succeeded"])
    frame["failure_rate"] = _rate(frame["not_succeeded"], frame["calls"] - frame["in_flight"])
    durations = durations.rename(
        columns={"duration_ms_p50": "duration_p50_ms", "duration_ms_p90": "duration_p90_ms"}
    )
    frame = frame.merge(
        durations[["tool", "duration_p50_ms", "duration_p90_ms"]], on="tool", how="left"
    )
    frame = _floats(frame, ["duration_p50_ms", "duration_p90_ms"])
    frame = frame.sort_values(["calls", "tool"], ascending=[False, True], ignore_index=True)
    return frame[columns]


def _refusals(conn: sa.Connection, scope: Scope) -> pd.DataFrame:
    denied_calls = _frame(
        conn,
        sa.select(tool_calls.c.tool_name.label("tool"), sa.func.count().label("denied_calls"))
        .join_from(tool_calls, runs, runs.c.id == tool_calls.c.run_id)
        .where(*scope.conditions(), tool_calls.c.status == ToolCallStatus.DENIED.value)
        .group_by(tool_calls.c.tool_name),
    )
    refused = (
        sa.select(events.c.data["tool"].as_string().label("tool"))
        .join_from(events, runs, runs.c.id == events.c.run_id)
        .where(
            events.c.event_type == EventType.TOOL_DENIED.value,
            events.c.created_at >= scope.since,
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
        .where(*scope.conditions())
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
