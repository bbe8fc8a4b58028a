"""Run analytics: whether the agents work, what they cost, and where they get stuck.

Every figure is aggregated in the database, by the same SQLAlchemy Core queries on SQLite and
PostgreSQL, and comes back as a small pandas DataFrame: a row per day, status, model, tool or
objective, never a row per run, step or event (the two top-10 lists of runs excepted).

Filters: the runs created in [since, until), and optionally those of one objective. A run's
steps, tool calls, approvals and events follow it: they count when their run is in range.

Percentiles (median, p90) are PostgreSQL's `percentile_cont` (linear interpolation between
the two nearest ranks), computed in the database on both backends when read from the runs:
on PostgreSQL by `percentile_cont` itself; on SQLite, which has no percentile function, by
ranking the values with ROW_NUMBER() and COUNT() windows and picking the rank(s) around the
percentile (`_quantiles`). Both give the same value.

Cost: tokens are summed per model in SQL (the steps, plus the invalid replies the ledger
records as step_error events: those tokens were billed too), and each model's sums are
priced once (agent_core.prices: AGENT_MODEL_PRICES, else genai-prices). A model without a
price shows "no price" (NaN in a DataFrame, None in a report), never 0, and each total says
how many tokens had no price. The cost of each run, for the most expensive ones and the
distribution per run, is computed in SQL from the same per-model prices.

Figures read from ledger events (invalid replies, fallbacks, tool_denied) cover what the
ledger still holds: maintenance prunes events older than AGENT_EVENTS_RETENTION_DAYS (a
summarized day keeps what its events said when it was summarized).

Long ranges: maintenance summarizes each closed day once every run of it has ended
(daybook: counts and sums per day and objective, every value a percentile is taken over,
each run's tokens per model, the day's slowest runs). `analyze` reads a range's summarized
days from their summaries and only the rest (its first and last hours, today, a day with a
run still going) from the runs, in a Summary that gives the same tables as the SQL figures:
its counts and sums come from SQL, its percentiles from the values (numpy's linear
interpolation, percentile_cont's definition) and its costs from the tokens priced when read
(summarized.py uses the SQL figures' shaping functions; tests/test_analytics_summaries.py
holds the two equal, within float rounding). The functions of one figure each read the runs.

The package: filters (the scope), sql (dialect pieces, percentiles), runs, llm, cost, tools,
approvals (each group of figures), headline, figures (the public functions and analyze),
summary (a Summary of some runs), daybook (closed days stored and read), packing (a day's
Summary as stored), summarized (the tables of a Summary), reporting.
"""

from __future__ import annotations

from agent_core.analytics.approvals import APPROVAL_COLUMNS
from agent_core.analytics.cost import DEAREST_COLUMNS
from agent_core.analytics.export import csv_text
from agent_core.analytics.figures import (
    TABLES,
    Analytics,
    analyze,
    approvals_summary,
    budgets_exhausted,
    cost_by_day,
    cost_by_model,
    cost_by_objective,
    cost_per_run,
    model_stats,
    most_expensive_runs,
    refusals,
    run_distributions,
    runs_by_day,
    slowest_runs,
    stop_reasons,
    tool_stats,
)
from agent_core.analytics.filters import (
    BUDGET_REASONS,
    CLOCK_SLACK,
    ENDED,
    IN_PROGRESS,
    MAX_FILLED_DAYS,
    NO_MODEL,
    NO_PRICE,
    QUANTILES,
    TOP_RUNS,
    Prices,
    Scope,
    Source,
)
from agent_core.analytics.llm import ANSWER_EVENTS
from agent_core.analytics.reporting import (
    format_cost,
    format_share,
    parse_since,
    records,
    report,
    report_text,
)
from agent_core.analytics.runs import DISTRIBUTIONS
from agent_core.analytics.tools import CALL_COLUMNS

__all__ = [
    "ANSWER_EVENTS",
    "APPROVAL_COLUMNS",
    "BUDGET_REASONS",
    "CALL_COLUMNS",
    "CLOCK_SLACK",
    "DEAREST_COLUMNS",
    "DISTRIBUTIONS",
    "ENDED",
    "IN_PROGRESS",
    "MAX_FILLED_DAYS",
    "NO_MODEL",
    "NO_PRICE",
    "QUANTILES",
    "TABLES",
    "TOP_RUNS",
    "Analytics",
    "Prices",
    "Scope",
    "Source",
    "analyze",
    "approvals_summary",
    "budgets_exhausted",
    "cost_by_day",
    "cost_by_model",
    "cost_by_objective",
    "cost_per_run",
    "csv_text",
    "format_cost",
    "format_share",
    "model_stats",
    "most_expensive_runs",
    "parse_since",
    "records",
    "refusals",
    "report",
    "report_text",
    "run_distributions",
    "runs_by_day",
    "slowest_runs",
    "stop_reasons",
    "tool_stats",
]
