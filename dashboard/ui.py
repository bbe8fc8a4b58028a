"""Small pieces pages share: status badges, links to a run, times, JSON, empty states.

Words come from agent_core (api.run_outcome, api.step_sentence, ...): this module only
decides how they look.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from agent_core import api
from dashboard.plain import inline_code, plain
from dashboard.shell import page_path

__all__ = ["inline_code", "plain"]  # the escapes every page uses, re-exported here

BADGE_COLOURS = {
    api.RunStatus.QUEUED: "gray",
    api.RunStatus.RUNNING: "blue",
    api.RunStatus.PAUSED: "orange",
    api.RunStatus.COMPLETED: "green",
    api.RunStatus.FAILED: "red",
    api.RunStatus.CANCELLED: "gray",
    api.RunStatus.SKIPPED: "gray",
}
APPROVAL_COLOURS = {
    api.ApprovalStatus.PENDING: "orange",
    api.ApprovalStatus.APPROVED: "green",
    api.ApprovalStatus.REJECTED: "red",
    api.ApprovalStatus.EXPIRED: "gray",
    api.ApprovalStatus.CANCELLED: "gray",
}
CALL_COLOURS = {
    api.ToolCallStatus.SUCCEEDED: "green",
    api.ToolCallStatus.STARTED: "blue",
    api.ToolCallStatus.AWAITING_APPROVAL: "orange",
}


def badge(text: str, colour: str) -> str:
    """Markdown for a coloured badge (square brackets in the text are escaped)."""
    cleaned = text.replace("[", "(").replace("]", ")")
    return f":{colour}-badge[{cleaned}]"


def run_badge(run: api.Run, failed_calls: int = 0) -> str:
    text = api.run_outcome(run, failed_calls)
    colour = BADGE_COLOURS[run.status]
    if failed_calls and run.status is api.RunStatus.COMPLETED:
        colour = "orange"
    return badge(text, colour)


def approval_badge(status: api.ApprovalStatus) -> str:
    return badge(api.APPROVAL_STATUS_LABELS[status], APPROVAL_COLOURS[status])


def call_badge(status: api.ToolCallStatus) -> str:
    return badge(api.TOOL_CALL_STATUS_LABELS[status], CALL_COLOURS.get(status, "red"))


def run_link(run_id: str, label: str, *, icon: str | None = None) -> None:
    st.page_link(page_path("run"), label=label, icon=icon, query_params={"id": run_id})


def approval_link(approval_id: str, label: str) -> None:
    st.page_link(page_path("approval"), label=label, query_params={"id": approval_id})


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def time_left(until: datetime, now: datetime) -> str:
    seconds = (until - now).total_seconds()
    if seconds <= 0:
        return "expired"
    return api.format_duration(seconds * 1000) + " left"


def run_duration(run: api.Run) -> str:
    if run.active_ms:
        return api.format_duration(run.active_ms)
    return "-"


def json_block(value: Any) -> None:
    st.code(
        api.visible_json(value, indent=2),
        language="json",
        wrap_lines=True,
    )


def empty(message: str) -> None:
    st.info(message, icon=":material/info:")


def page_offset(key: str, per_page: int) -> int:
    """The offset the page picker `key` asks for (before the query that gives the total)."""
    return (int(st.session_state.get(key) or 1) - 1) * per_page


def pager(key: str, total: int, per_page: int) -> None:
    """A page picker under a list, when there is more than one page."""
    pages = max(1, -(-total // per_page))
    if pages > 1:
        st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=key)
    elif key in st.session_state:
        del st.session_state[key]


def duration(ms: float | None) -> str:
    """A duration in words; "-" when unknown (None or NaN)."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return "-"
    return api.format_duration(ms)


def short_duration(ms: float | None) -> str:
    """A duration short enough for a metric: 850 ms, 12.4 s, 3.5 min, 2.1 h."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return "-"
    if ms < 60_000:
        return api.format_duration(ms)
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


def measure(value: float | None, unit: str) -> str:
    """A figure of a distribution with its unit: a duration, dollars, or a count."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "ms":
        return api.format_duration(value)
    if unit == "USD":
        return api.format_cost(value)
    return f"{value:,.1f}".removesuffix(".0") + f" {unit}"


def csv_download(name: str, frame: pd.DataFrame, span: str) -> None:
    """A button downloading the table as CSV: every column, raw numbers (key `csv_<name>`).
    A download does not rerun the page: a rerun replaces the files of every download button,
    and the browser then cancels a download still under way (seen pressing two in turn)."""
    st.download_button(
        "Download CSV",
        api.csv_text(frame),
        file_name=f"{name}_{span}.csv",
        mime="text/csv",
        key=f"csv_{name}",
        icon=":material/download:",
        on_click="ignore",
    )


def table(
    name: str,
    frame: pd.DataFrame,
    span: str,
    *,
    shown: pd.DataFrame | None = None,
    column_config: dict[str, Any] | None = None,
) -> None:
    """A table in words (`shown`, by default the frame itself) and its CSV download. Whole
    numbers are shown with thousands separators."""
    shown = frame if shown is None else shown
    config = {
        column: st.column_config.NumberColumn(format="localized")
        for column, dtype in shown.dtypes.items()
        if pd.api.types.is_integer_dtype(dtype)
    }
    st.dataframe(
        shown, hide_index=True, column_config=config | (column_config or {}), key=f"table_{name}"
    )
    csv_download(name, frame, span)
