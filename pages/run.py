"""One run: what the agent did, step by step, in plain words; refreshed while it works.

Its link (`/run?id=RUN_ID`) can be shared. Long runs page their timeline.
"""

import streamlit as st

from agent_core import api
from dashboard import access, timeline, ui
from dashboard.core import shown_errors
from dashboard.shell import begin, page_path

STEPS_PER_PAGE = 50
LIVE_EVERY_S = 2.0

core = begin()
run_id = st.query_params.get("id")
if not run_id:
    st.title("Run")
    ui.empty("Open a run from the Runs page: each run has a link of its own.")
    st.page_link(page_path("runs"), label="Runs", icon=":material/history:")
    st.stop()

with shown_errors():
    view = core.store.run_view(run_id)
    run = view.run
    st.title(f"Run #{run.run_number} · {ui.plain(view.objective_title)}")
    st.page_link(
        page_path("objectives"),
        label="Objective",
        icon=":material/flag:",
        query_params={"id": run.objective_id},
    )
    active = run.status in (api.RunStatus.QUEUED, api.RunStatus.RUNNING, api.RunStatus.PAUSED)
    if active and run.cancel_requested_at is None:
        with st.popover("Cancel this run", icon=":material/cancel:"):
            st.write("The run stops before its next step; a waiting approval is cancelled.")
            if st.button("Yes, cancel it", type="primary", key="cancel_run"):
                with shown_errors():
                    api.cancel_run(core.store, run.id, by=access.current_admin(core.settings))
                    st.rerun()
    offset = ui.page_offset("timeline_page", STEPS_PER_PAGE)

    @st.fragment(run_every=LIVE_EVERY_S if active else None)
    def live() -> None:
        with shown_errors():
            timeline.run_sections(core, run_id, offset=offset, limit=STEPS_PER_PAGE)

    live()
    ui.pager("timeline_page", run.steps_count, STEPS_PER_PAGE)
