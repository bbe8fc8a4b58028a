"""Runs: every run, newest first, filtered by status, objective and date; paged by the store."""

from datetime import UTC, datetime, time, timedelta

import streamlit as st

from agent_core import api
from dashboard import ui
from dashboard.core import shown_errors
from dashboard.shell import begin

PER_PAGE = 25

core = begin()
st.title("Runs")

with shown_errors():
    store = core.store
    objectives = {objective.id: objective.title for objective in store.list_objectives()}
    left, middle, right = st.columns([2, 2, 2])
    statuses = left.multiselect(
        "Status",
        list(api.RunStatus),
        format_func=api.run_status_label,
        key="runs_status",
        placeholder="Any status",
    )
    objective_id = middle.selectbox(
        "Objective",
        [None, *objectives],
        format_func=lambda key: "All objectives" if key is None else objectives[key],
        key="runs_objective",
    )
    dates = right.date_input("Started between", value=(), key="runs_dates", format="YYYY-MM-DD")
    since = until = None
    if isinstance(dates, tuple | list) and len(dates) >= 1:
        since = datetime.combine(dates[0], time.min, tzinfo=UTC)
        if len(dates) == 2:
            until = datetime.combine(dates[1], time.min, tzinfo=UTC) + timedelta(days=1)

    filters = {
        "statuses": statuses,
        "objective_id": objective_id,
        "since": since,
        "until": until,
        "limit": PER_PAGE,
    }
    page = store.runs_page(**filters, offset=ui.page_offset("runs_page", PER_PAGE))
    if not page.rows and page.offset:  # the filters changed under a later page
        del st.session_state["runs_page"]
        page = store.runs_page(**filters)
    st.caption(f"{page.total:,} run{'s' if page.total != 1 else ''}")
    if not page.rows:
        if page.total or statuses or objective_id or since:
            ui.empty("No run matches these filters.")
        else:
            ui.empty("No run yet. Open an objective and press “Run now”, or give it a schedule.")
    for row in page.rows:
        with st.container(border=True):
            head, facts = st.columns([3, 4])
            with head:
                ui.run_link(row.id, f"Run #{row.run_number} · {ui.plain(row.objective_title)}")
                st.markdown(ui.run_badge(row, row.failed_calls))
            facts.markdown(
                f"{ui.plain(row.trigger)} · started {ui.when(row.started_at or row.created_at)} · "
                f"{ui.run_duration(row)}  \n"
                f"{row.steps_count} steps · {row.tool_calls_count} tool calls · "
                f"{row.total_tokens:,} tokens"
                + (
                    f"  \n{api.stop_reason_sentence(row.stop_reason)}"
                    if row.stop_reason and row.stop_reason is not api.StopReason.DONE
                    else ""
                )
            )
    ui.pager("runs_page", page.total, PER_PAGE)
