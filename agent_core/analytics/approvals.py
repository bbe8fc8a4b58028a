"""Approvals asked by the runs in range: decisions, expiries and the time to a decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from agent_core.analytics.filters import Scope
from agent_core.analytics.sql import _floats, _frame, _ints, _Millis, _quantiles
from agent_core.models import ApprovalStatus
from agent_core.store.schema import approvals, runs

APPROVAL_COLUMNS = (
    "requested",
    "approved",
    "rejected",
    "expired",
    "cancelled",
    "changed",
    "pending",
)


def waiting_approval(now: datetime) -> sa.ColumnElement[bool]:
    """An approval that can still be decided: pending, and not past its expiry."""
    return sa.and_(approvals.c.status == ApprovalStatus.PENDING.value, approvals.c.expires_at > now)


def _asked(scope: Scope, now: datetime, *more: sa.ColumnElement[Any]) -> sa.Subquery:
    """The approvals of the runs in scope: tool, an is_{name} flag (0 or 1) for each of
    APPROVAL_COLUMNS after `requested`, and wait_ms (to an approval or a rejection), with
    `more` columns (of the approval or its run) ahead."""
    status = approvals.c.status
    waiting = waiting_approval(now)
    overdue = sa.and_(status == ApprovalStatus.PENDING.value, approvals.c.expires_at <= now)
    decided = status.in_([ApprovalStatus.APPROVED.value, ApprovalStatus.REJECTED.value])
    return (
        sa.select(
            *more,
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


def _approvals(conn: sa.Connection, scope: Scope, now: datetime, *, by_tool: bool) -> pd.DataFrame:
    source = _asked(scope, now)
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
    return _approvals_table(frame, by_tool=by_tool)


def _approvals_table(frame: pd.DataFrame, *, by_tool: bool) -> pd.DataFrame:
    """Counts (APPROVAL_COLUMNS) and wait_ms_n, _mean, _p50, _p90, in one row or one per
    tool, as the approvals table."""
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
