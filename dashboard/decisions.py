"""An approval request as the inbox and the approval page show it, with its decision buttons:
approve, reject with a reason, or approve with changed arguments."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import streamlit as st

from agent_core import api
from dashboard import ui
from dashboard.core import Core, shown_errors

MAX_ARGS_CHARS = 100_000  # a changed call, not a document

# Decide(approve, reason, args) -> the decided approval
Decide = Callable[[bool, str | None, dict[str, Any] | None], api.Approval]


def request_card(
    core: Core,
    approval: api.Approval,
    *,
    thought: str | None,
    run_label: str,
    decide: Decide | None,
    key: str,
    show_run_link: bool = True,
    allow_changes: bool = True,
) -> None:
    """One request: what the agent wants to do and why, the exact arguments, the run, the
    time left; and, when `decide` is given and it is pending, the decision buttons."""
    now = core.store.now()
    with st.container(border=True, key=f"request_{key}"):
        st.markdown(f"**{ui.plain(api.approval_request_sentence(approval))}**")
        st.markdown(ui.approval_badge(approval.status))
        if thought:
            st.markdown(f"*Why:* {ui.plain(thought)}")
        st.caption(f"Why it needs you: {ui.plain(approval.risk_reason)}")
        st.markdown(f"Exact call: {ui.inline_code(approval.tool_name)} with")
        ui.json_block(approval.args)
        if show_run_link:
            ui.run_link(approval.run_id, ui.plain(run_label), icon=":material/play_arrow:")
        else:
            st.caption(ui.plain(run_label))
        if approval.status is api.ApprovalStatus.PENDING:
            st.caption(
                f"Expires {ui.when(approval.expires_at)} ({ui.time_left(approval.expires_at, now)})"
            )
        elif approval.decided_at is not None:
            who = f" by {ui.plain(approval.decided_by)}" if approval.decided_by else ""
            reason = f": {ui.plain(approval.decision_reason)}" if approval.decision_reason else ""
            st.caption(
                f"{api.APPROVAL_STATUS_LABELS[approval.status].capitalize()}{who} "
                f"at {ui.when(approval.decided_at)}{reason}"
            )
        problem = tool_problem(core, approval.tool_name)
        if problem and approval.status is api.ApprovalStatus.PENDING:
            st.warning(
                f"This call cannot succeed as the runtime is configured: {ui.plain(problem)}. "
                "Fix the setting first, or reject it.",
                icon=":material/warning:",
            )
        if (
            decide is not None
            and approval.status is api.ApprovalStatus.PENDING
            and approval.expires_at > now
        ):
            _buttons(approval, decide, key, allow_changes=allow_changes)


def admin_decides(core: Core, approval_id: str, by: str) -> Decide:
    """A decision by a logged-in admin (who may change the arguments)."""

    def decide(approve: bool, reason: str | None, args: dict[str, Any] | None) -> api.Approval:
        return api.decide(
            core.store,
            core.settings,
            approval_id,
            approve=approve,
            by=by,
            reason=reason,
            args=args,
            tools=core.runtime.tools,
        )

    return decide


def row_card(core: Core, row: api.ApprovalRow, *, by: str | None) -> None:
    """A request in the inbox: decidable by `by` when given, read-only otherwise."""
    request_card(
        core,
        row,
        thought=row.thought,
        run_label=f"Run #{row.run_number} · {row.objective_title}",
        key=row.id,
        decide=admin_decides(core, row.id, by) if by is not None else None,
    )


def tool_problem(core: Core, tool_name: str) -> str | None:
    tool = core.runtime.tools.get(tool_name)
    if tool is None:
        return f"the tool {tool_name} is not installed"
    return tool.problem() if hasattr(tool, "problem") else None


def _buttons(approval: api.Approval, decide: Decide, key: str, *, allow_changes: bool) -> None:
    approve_col, reject_col = st.columns(2)
    if approve_col.button("Approve", type="primary", key=f"approve_{key}", width="stretch"):
        _apply(
            lambda: decide(True, None, None), "Approved: the run carries on with exactly this call."
        )
    with reject_col.popover("Reject", width="stretch"):
        reason = st.text_input("Reason (the agent is told)", key=f"reason_{key}")
        if st.button("Reject", key=f"reject_{key}"):
            _apply(lambda: decide(False, reason, None), "Rejected: the agent is told and adapts.")
    if not allow_changes:
        return
    with st.expander("Approve with changes"):
        text = st.text_area(
            "Arguments (JSON)",
            value=api.visible_json(approval.args, indent=2),
            key=f"args_{key}",
            height=180,
        )
        if st.button("Approve with these arguments", key=f"approve_changed_{key}"):
            edited, problem = parsed_arguments(text)
            if problem:
                st.error(problem)
                return
            _apply(
                lambda: decide(True, None, edited),
                "Approved with your changes: the run carries on with exactly these arguments.",
            )


def parsed_arguments(text: str) -> tuple[Any, str | None]:
    """The edited arguments and None, or None and one sentence saying why they cannot be
    read: too long, not JSON, or a number or nesting Python refuses to parse (ValueError,
    RecursionError). (Valid JSON that is not an object is the service's to refuse.)"""
    if len(text) > MAX_ARGS_CHARS:
        return None, (
            f"The arguments are too long ({len(text):,} characters; at most "
            f"{MAX_ARGS_CHARS:,}): shorten them."
        )
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"The arguments are not valid JSON: {exc.msg} (line {exc.lineno})."
    except RecursionError:
        return None, "The arguments are nested too deeply to be read: flatten them."
    except ValueError:
        return None, (
            "The arguments hold a number too long to be read (at most 4,300 digits): shorten it."
        )


def _apply(action: Callable[[], api.Approval], done: str) -> None:
    with shown_errors():
        try:
            action()
        except api.InvalidFields as exc:
            st.error(ui.plain(exc.sentence({"args": "The changed arguments"})))
            return
        st.session_state["decision_notice"] = done
        st.rerun()


def notice() -> None:
    """The outcome of the decision made on the previous run, once."""
    message = st.session_state.pop("decision_notice", None)
    if message:
        st.success(message, icon=":material/check_circle:")
