"""Approvals: what waits for your decision first, then what was decided or expired."""

import streamlit as st

from agent_core import api
from dashboard import access, decisions, ui
from dashboard.core import shown_errors
from dashboard.shell import begin

PER_PAGE = 20
WATCH_EVERY_S = 3.0

core = begin()
st.title("Approvals")
decisions.notice()

with shown_errors():
    store = core.store
    by = access.current_admin(core.settings)
    pending = store.approvals_page(statuses=[api.ApprovalStatus.PENDING], limit=50)
    st.subheader(f"Waiting for you ({pending.total})")
    if not pending.rows:
        ui.empty(
            "Nothing waits for your approval. When the agent wants to do something risky "
            "(send an email, delete a row...), the request appears here and you are told by "
            "email and WhatsApp."
        )
    for row in pending.rows:
        decisions.row_card(core, row, by=by)
    shown = [row.id for row in pending.rows]

    @st.fragment(run_every=WATCH_EVERY_S)
    def watch() -> None:
        """New or vanished requests reload the page, unless a decision is being written."""
        now_pending = store.approvals_page(statuses=[api.ApprovalStatus.PENDING], limit=50)
        if [row.id for row in now_pending.rows] == shown:
            return
        typing = any(st.session_state.get(f"reason_{approval_id}") for approval_id in shown)
        if typing:
            st.info("The list of requests changed: it refreshes when you are done.")
        else:
            st.rerun(scope="app")

    watch()

    st.subheader("Decided and expired")
    offset = ui.page_offset("decided_page", PER_PAGE)
    decided = store.approvals_page(
        statuses=[
            status for status in api.ApprovalStatus if status is not api.ApprovalStatus.PENDING
        ],
        limit=PER_PAGE,
        offset=offset,
    )
    if not decided.rows:
        ui.empty("No decision yet.")
    for row in decided.rows:
        decisions.row_card(core, row, by=None)
    ui.pager("decided_page", decided.total, PER_PAGE)
