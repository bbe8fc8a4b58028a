"""The headline: a few numbers that say at a glance how the runs of a range went."""

from __future__ import annotations

from typing import Any

import pandas as pd

from agent_core.analytics.cost import _total_cost
from agent_core.analytics.filters import ENDED, IN_PROGRESS
from agent_core.analytics.sql import _number
from agent_core.models import RunStatus


def _headline_figures(
    counts: pd.DataFrame,
    distributions: pd.DataFrame,
    by_model: pd.DataFrame,
    completed_with_failures: int,
    tokens: int,
    waiting: int,
) -> dict[str, Any]:
    """The headline from the runs per status (status, stop_reason, runs), the distributions
    and models tables, and three counts."""
    status = counts["status"] if not counts.empty else pd.Series(dtype=object)
    count = counts["runs"] if not counts.empty else pd.Series(dtype="int64")

    def runs_in(*statuses: RunStatus) -> int:
        return int(count[status.isin([s.value for s in statuses])].sum())

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
