"""Overview: how the agents are doing, what waits for you, and what to do next."""

import streamlit as st

from agent_core import api
from dashboard import ui
from dashboard.core import shown_errors
from dashboard.shell import begin, page_path

core = begin()
st.title("Overview")

with shown_errors():
    store = core.store
    objectives = store.list_objectives()
    if not objectives:
        ui.empty(
            "No objective yet. An objective is a task you hand to the agent, such as "
            "“every Monday, find last week's leads without a follow-up and draft an email "
            "to each”. Create the first one to get started."
        )
        st.page_link(page_path("objectives"), label="Create an objective", icon=":material/add:")
    if core.runtime.llm is None and not core.settings.agent_demo:
        st.warning(
            f"The agent has no language model yet: {ui.plain(core.runtime.llm_problem)}. "
            "See the System page.",
            icon=":material/warning:",
        )
    counts = store.run_counts()
    waiting = store.pending_approvals_count()
    columns = st.columns(4)
    columns[0].metric("Waiting for your approval", waiting)
    columns[1].metric(
        "Running or queued", counts[api.RunStatus.RUNNING] + counts[api.RunStatus.QUEUED]
    )
    columns[2].metric("Completed", counts[api.RunStatus.COMPLETED])
    columns[3].metric("Failed", counts[api.RunStatus.FAILED])
    if waiting:
        st.page_link(
            page_path("approvals"),
            label=f"Decide the {waiting} waiting request{'s' if waiting > 1 else ''}",
            icon=":material/gavel:",
        )

    st.subheader("Latest runs")
    latest = store.runs_page(limit=8)
    if not latest.rows:
        ui.empty("No run yet. Open an objective and press “Run now”, or give it a schedule.")
    for row in latest.rows:
        with st.container(border=True):
            ui.run_link(row.id, f"Run #{row.run_number} · {ui.plain(row.objective_title)}")
            st.markdown(
                f"{ui.run_badge(row, row.failed_calls)} · {ui.when(row.created_at)} · "
                f"{api.run_counters(row)}"
            )
    if latest.total > len(latest.rows):
        st.page_link(page_path("runs"), label="All runs", icon=":material/history:")
