"""One approval request: opened from the inbox (`/approval?id=...`, behind the login) or
from the signed link in an email or WhatsApp message (`/approval?token=...`, no password,
usable once). Laid out for a phone."""

import streamlit as st

from agent_core import api
from dashboard import access, decisions, ui
from dashboard.core import shown_errors
from dashboard.shell import begin, page_path

core = begin(token_page=True)
st.title("Approval request")
decisions.notice()
token = st.query_params.get("token")
approval_id = st.query_params.get("id")

with shown_errors():
    store = core.store
    if token:
        try:
            claim, view = api.open_link(store, core.settings, token)
        except api.InvalidInput as exc:
            if st.session_state.get("decided_by_link") == token:
                st.stop()  # the notice above already says what was decided
            st.error(ui.plain(f"{str(exc)[:1].upper()}{str(exc)[1:]}."))
            st.stop()
        by = None
        if core.settings.agent_approvers:
            by = st.selectbox("Your name", core.settings.agent_approvers, key="link_name")
            st.caption(
                ui.plain(
                    f"Recorded as {by} (via {claim.channel} link to "
                    f"{claim.recipient or 'admin'}): the link proves only who received it."
                )
            )

        def decide(approve: bool, reason: str | None, args: object) -> api.Approval:
            st.session_state["decided_by_link"] = token
            return api.decide_by_link(
                store, core.settings, token, approve=approve, by=by, reason=reason
            )

        decisions.request_card(
            core,
            view.approval,
            thought=view.thought,
            run_label=f"Run #{view.run.run_number} · {view.objective_title}",
            key="link",
            decide=decide,
            show_run_link=False,
            allow_changes=False,
        )
    elif approval_id:
        view = store.approval_view(approval_id)
        by = access.current_admin(core.settings)
        decisions.request_card(
            core,
            view.approval,
            thought=view.thought,
            run_label=f"Run #{view.run.run_number} · {view.objective_title}",
            key=view.approval.id,
            decide=decisions.admin_decides(core, view.approval.id, by),
        )
        st.page_link(page_path("approvals"), label="All approvals", icon=":material/gavel:")
    else:
        ui.empty("Open a request from the Approvals page.")
        st.page_link(page_path("approvals"), label="Approvals", icon=":material/gavel:")
