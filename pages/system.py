"""System: is everything set up? Each part with what to set, live tests, the ledger check."""

import streamlit as st

from agent_core import api
from dashboard import ui
from dashboard.core import shown_errors
from dashboard.shell import begin

core = begin()
st.title("System")


def show(check: api.Check) -> None:
    icon = ":material/check_circle:" if check.ok else ":material/error:"
    (st.success if check.ok else st.warning)(
        f"**{check.area}.** {ui.plain(check.sentence)}", icon=icon
    )


with shown_errors():
    for check in api.system_checks(core.runtime):
        show(check)

    st.subheader("Try it")
    llm_col, mail_col, phone_col = st.columns(3)
    if llm_col.button("Test the language model", key="test_llm", width="stretch"):
        with st.spinner("Asking the model…"):
            st.session_state["test_result"] = api.test_llm(core.runtime)
    if mail_col.button("Send a test email", key="test_email", width="stretch"):
        st.session_state["test_result"] = api.test_email(core.settings)
    if phone_col.button("Send a test WhatsApp message", key="test_whatsapp", width="stretch"):
        st.session_state["test_result"] = api.test_whatsapp(core.settings)
    if "test_result" in st.session_state:
        show(st.session_state["test_result"])

    st.subheader("Audit ledger")
    st.caption(
        "Every step, call, decision and notification is chained by hashes, and the worker "
        "seals every run's newest event under the secret key: verifying recomputes every "
        "chain, checks the seals and names what was changed or removed."
    )
    if st.button("Verify the ledger", key="verify_ledger"):
        with st.spinner("Verifying…"):
            report = api.verify_ledger(core.store, core.settings)
        verdict, seals = api.ledger_verdict(report), api.seal_summary(report)
        said = f"{verdict[:1].upper()}{verdict[1:]}. {seals[:1].upper()}{seals[1:]}."
        if report.ok:
            st.success(said)
        else:
            st.error(said)
            for seal in report.seal_breaks:
                st.markdown(f"- seal {seal.seal}: {ui.plain(seal.problem)}")
            for item in report.breaks:
                problem = ui.plain(item.problem)
                st.markdown(f"- run {ui.plain(item.run_id)}, event {item.seq}: {problem}")
        for warning in report.warnings:
            st.warning(ui.plain(warning))

    with st.expander("All settings (secrets hidden)"):
        ui.json_block(dict(api.settings_summary(core.settings)))
