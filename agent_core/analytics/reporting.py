"""A report: JSON-ready values, and the same in words for a terminal; parsing `--since`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from agent_core.analytics.figures import analyze
from agent_core.analytics.filters import BUDGET_REASONS, NO_MODEL, NO_PRICE, Prices, Source
from agent_core.render import counted, format_duration

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
        if amount == 0:
            raise ValueError(f"--since {value} is no time at all: give more than zero, such as 7d")
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


def _per_run_table(distributions: Sequence[Mapping[str, Any]]) -> list[str]:
    """The per-run distributions as a table whose columns are as wide as their values."""
    heads = ("median", "p90", "mean")
    rows = [
        (
            f"  {row['label']} ({counted(row['runs'], 'run')})",
            *(_measure(row[key], row["unit"]) for key in heads),
        )
        for row in distributions
    ]
    title = "Per run (runs that ended)"
    label_width = max([len(title), *(len(row[0]) for row in rows)])
    widths = [
        max([len(head), *(len(row[column]) for row in rows)])
        for column, head in enumerate(heads, 1)
    ]

    def line(cells: Sequence[str]) -> str:
        values = "".join(
            f"  {cell:>{width}}" for cell, width in zip(cells[1:], widths, strict=True)
        )
        return f"{cells[0]:<{label_width}}{values}"

    return [line((title, *heads)), *(line(row) for row in rows)]


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
        f"Runs: {counted(head['runs'], 'run')} ({head['completed']:,} completed, "
        f"{head['failed']:,} failed, {head['cancelled']:,} cancelled, "
        f"{head['skipped']:,} skipped, {head['in_progress']:,} in progress)"
    )
    success = f"Success rate: {format_share(head['success_rate'])}"
    if head["ended"]:
        success += f" of the {counted(head['ended'], 'run')} that ended"
    if head["completed_with_failed_calls"]:
        success += (
            f" ({counted(head['completed_with_failed_calls'], 'completed run')} had tool calls "
            "that did not succeed)"
        )
    lines.append(success)
    cost = f"Cost: {format_cost(head['cost_usd'])} for {counted(head['tokens'], 'token')}"
    if head["unpriced_tokens"] and head["unpriced_tokens"] != head["tokens"]:
        cost += f" ({counted(head['unpriced_tokens'], 'token')} had no price)"
    lines.append(cost)
    lines.append(
        f"Median time working per run: {format_duration(head['median_duration_ms'])}; "
        f"approvals waiting: {head['approvals_waiting']:,}"
    )

    lines += ["", *_per_run_table(report["run_distributions"])]

    lines += _section(
        "Why runs ended",
        [
            f"  {counted(row['runs'], 'run')} ({format_share(row['share'])}): {row['sentence']}"
            for row in report["stop_reasons"]
        ],
    )
    lines += _section("Models", [_model_line(row) for row in report["models"]])
    lines += _section(
        "Cost by objective", [_objective_cost_line(row) for row in report["cost_by_objective"]]
    )
    lines += _section("Tools", [_tool_line(row) for row in report["tools"]])
    if report["refusals"]:
        lines += ["", "Refused by policy"]
        for row in report["refusals"]:
            lines.append(f"  {row['tool']}: {counted(row['denied_calls'], 'call')}")

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
                f"  {row['objective']}: {counted(row['exhausted'], 'run')} of "
                f"{row['ended_runs']:,} ({kinds})"
            )

    lines += _section(
        "Slowest runs",
        [
            f"  Run #{row['run_number']} · {row['objective']}: "
            f"{format_duration(row['duration_ms'])}  ({row['run_id']})"
            for row in report["slowest_runs"]
        ],
    )
    lines += _section(
        "Most expensive runs", [_expensive_run_line(row) for row in report["most_expensive_runs"]]
    )
    return "\n".join(lines) + "\n"


def _section(title: str, rows: list[str]) -> list[str]:
    """A heading and its lines; with none, it says so instead of standing bare."""
    return ["", title, *(rows or ["  none in this range"])]


def _model_line(row: Mapping[str, Any]) -> str:
    if row["model"] == NO_MODEL:
        return f"  {counted(row['llm_errors'], 'run')} ended with no model answering"
    latency = (
        f"latency {format_duration(row['latency_p50_ms'])} median, "
        f"{format_duration(row['latency_p90_ms'])} p90"
    )
    return (
        f"  {row['model']}: {counted(row['calls'], 'call')}, "
        f"{counted(row['invalid_replies'], 'invalid reply', 'invalid replies')}, "
        f"{counted(row['fallbacks'], 'fallback')}, {counted(row['tokens'], 'token')}, "
        f"{latency}, cost {format_cost(row['cost_usd'])}"
    )


def _objective_cost_line(row: Mapping[str, Any]) -> str:
    text = (
        f"  {row['objective']}: {format_cost(row['cost_usd'])} over "
        f"{counted(row['runs'], 'run')} ({format_cost(row['cost_per_run_usd'])} per run)"
    )
    if row["unpriced_tokens"]:
        text += f", {counted(row['unpriced_tokens'], 'token')} with no price"
    return text


def _tool_line(row: Mapping[str, Any]) -> str:
    return (
        f"  {row['tool']}: {counted(row['calls'], 'call')}, {row['not_succeeded']:,} did not "
        f"succeed ({format_share(row['failure_rate'])})"
        + (
            f", {format_duration(row['duration_p50_ms'])} median"
            if row["duration_p50_ms"] is not None
            else ""
        )
    )


def _expensive_run_line(row: Mapping[str, Any]) -> str:
    text = f"  Run #{row['run_number']} · {row['objective']}: {format_cost(row['cost_usd'])}"
    if row["unpriced_tokens"] and row["cost_usd"] is None:
        text += f" ({counted(row['unpriced_tokens'], 'token')})"
    elif row["unpriced_tokens"]:
        text += f" + {counted(row['unpriced_tokens'], 'token')} with no price"
    return f"{text}  ({row['run_id']})"


def _measure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return format_duration(value)
    if unit == "USD":
        return format_cost(value)
    return f"{value:,.1f}".removesuffix(".0")
