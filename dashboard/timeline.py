"""A run's story as the run page shows it: outcome, summary, each step, notifications, ledger.

Drawn inside a fragment that refreshes while the run is active; it holds no form, so
nothing an admin types is lost by a refresh.
"""

from __future__ import annotations

import streamlit as st

from agent_core import api
from dashboard import ui
from dashboard.core import Core

RESULT_INLINE_CHARS = 300
EVENTS_PER_PAGE = 200


def run_sections(core: Core, run_id: str, *, offset: int, limit: int) -> None:
    store = core.store
    view = store.run_view(run_id)
    run = view.run
    _outcome(view)
    page = store.timeline_page(run_id, offset=offset, limit=limit)
    st.subheader("What the agent did")
    if not page.items:
        ui.empty(
            "No step yet: the run is waiting for a worker."
            if run.status is api.RunStatus.QUEUED
            else "No step was recorded."
        )
    for item in page.items:
        step_card(item)
    notices = store.run_notifications(run_id)
    if notices:
        st.subheader("Notifications")
        for notice in notices:
            channel = "Email" if notice.channel == "email" else "WhatsApp"
            state = {
                "sent": ui.badge("sent", "green"),
                "pending": ui.badge("pending", "gray"),
                "failed": ui.badge("failed, will retry", "orange"),
                "gave_up": ui.badge("not sent", "red"),
            }[notice.status.value]
            detail = f" — {ui.plain(notice.last_error)}" if notice.last_error else ""
            st.markdown(
                f"{channel} ({notice.kind.value.replace('_', ' ')}) to "
                f"{ui.plain(notice.recipient or 'nobody')}: {state}{detail}"
            )
    with st.expander(f"Ledger ({run.event_seq} events)"):
        for event in store.events_page(run_id, after_seq=0, limit=EVENTS_PER_PAGE):
            sentence = ui.plain(api.event_sentence(event))
            st.markdown(f"`{event.seq:>4}` {ui.when(event.created_at)} — {sentence}")
        if run.event_seq > EVENTS_PER_PAGE:
            st.caption(
                f"The first {EVENTS_PER_PAGE} events are shown; "
                "`.venv/bin/python -m agent_core run show RUN_ID --json` prints them all."
            )


def _outcome(view: api.RunView) -> None:
    run = view.run
    st.markdown(ui.run_badge(run, view.failed_calls))
    headline = ui.plain(api.run_headline(run, view.failed_calls))
    if run.status is api.RunStatus.FAILED:
        st.error(headline + (f"\n\nDetails: {ui.plain(run.error)}" if run.error else ""))
    elif view.failed_calls or run.status is api.RunStatus.PAUSED:
        st.warning(headline)
    elif run.status is api.RunStatus.COMPLETED:
        st.success(headline)
    else:
        st.info(headline)
    if run.summary:
        st.markdown(f"**Summary.** {ui.plain(run.summary)}")
    st.caption(
        f"{api.run_counters(run)} · {ui.plain(run.trigger)} · queued {ui.when(run.created_at)} · "
        f"started {ui.when(run.started_at)} · ended {ui.when(run.completed_at)}"
    )


def step_card(item: api.TimelineItem) -> None:
    step, call, approval = item.step, item.tool_call, item.approval
    with st.container(border=True):
        st.markdown(f"**{ui.plain(api.step_sentence(step, call))}**")
        if step.thought:
            st.markdown(f"*Why:* {ui.plain(step.thought)}")
        if step.tool is not None:
            with st.expander("Arguments"):
                ui.json_block(step.args or {})
        error = api.step_error(step, call)
        if error:
            st.error(ui.plain(error))
        elif step.tool is not None and step.result is not None:
            text = api.describe_result(step.result, RESULT_INLINE_CHARS)
            if len(text) < RESULT_INLINE_CHARS:
                st.markdown(f"*Result:* {ui.inline_code(text)}")
            else:
                with st.expander("Result"):
                    ui.json_block(step.result)
        if approval is not None:
            decided = (
                f" by {ui.plain(approval.decided_by)} at {ui.when(approval.decided_at)}"
                if approval.decided_by
                else f" (expires {ui.when(approval.expires_at)})"
            )
            st.markdown(f"Approval: {ui.approval_badge(approval.status)}{decided}")
            if approval.status is api.ApprovalStatus.PENDING:
                ui.approval_link(approval.id, "Decide this request")
        tokens = step.prompt_tokens + step.completion_tokens
        facts = [ui.plain(step.model or ""), f"{tokens:,} tokens"]
        if step.latency_ms is not None:
            facts.append(f"model {api.format_duration(step.latency_ms)}")
        if call is not None and call.duration_ms is not None:
            facts.append(f"tool {api.format_duration(call.duration_ms)}")
        st.caption(" · ".join(fact for fact in facts if fact))
