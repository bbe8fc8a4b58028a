"""Tools: calls per status and duration, and the calls policy refused."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.filters import Scope
from agent_core.analytics.sql import _floats, _frame, _ints, _quantiles, _rate
from agent_core.events import EventType
from agent_core.models import FAILED_CALL_STATUSES, ToolCallStatus
from agent_core.store.schema import events, runs, tool_calls

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
    return _tools_table(found)


def _tools_table(found: pd.DataFrame) -> pd.DataFrame:
    """Per tool its calls in each status (a column per ToolCallStatus) and duration_ms_p50,
    duration_ms_p90, as the tools table."""
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


def _denied_events(scope: Scope, *more: sa.ColumnElement[Any]) -> sa.Subquery:
    """The tool named by each tool_denied event of the runs in scope, `more` columns ahead."""
    return (
        sa.select(*more, events.c.data["tool"].as_string().label("tool"))
        .join_from(events, runs, runs.c.id == events.c.run_id)
        .where(
            events.c.event_type == EventType.TOOL_DENIED.value,
            scope.after_start(events.c.created_at),
            *scope.conditions(),
        )
        .subquery()
    )


def failed_call(scope: Scope) -> sa.Exists:
    """Whether the run (in the enclosing query) has a tool call that did not succeed."""
    return sa.exists().where(
        tool_calls.c.run_id == runs.c.id,
        scope.after_start(tool_calls.c.created_at),
        tool_calls.c.status.in_(sorted(s.value for s in FAILED_CALL_STATUSES)),
    )


def _refusals(
    conn: sa.Connection, scope: Scope, denied_calls: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Refusals per tool; `denied_calls` (tool, denied_calls) when already counted."""
    if denied_calls is None:
        denied_calls = _tool_denials(conn, scope)
    refused = _denied_events(scope)
    denied_events = _frame(
        conn,
        sa.select(refused.c.tool, sa.func.count().label("tool_denied_events")).group_by(
            refused.c.tool
        ),
    )
    return _refusals_table(denied_calls, denied_events)


def _refusals_table(denied_calls: pd.DataFrame, denied_events: pd.DataFrame) -> pd.DataFrame:
    """Denied calls (tool, denied_calls) and tool_denied events (tool, tool_denied_events)
    per tool as the refusals table."""
    frame = denied_calls.merge(denied_events, on="tool", how="outer")
    frame["tool"] = frame["tool"].fillna("(unnamed tool)")
    frame = _ints(frame, ["denied_calls", "tool_denied_events"])
    frame = frame.sort_values(
        ["denied_calls", "tool_denied_events", "tool"],
        ascending=[False, False, True],
        ignore_index=True,
    )
    return frame[["tool", "denied_calls", "tool_denied_events"]]
