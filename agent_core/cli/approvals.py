"""`approval list | show | approve | reject`: risky actions waiting for a human.

Deciding (who may, what is refused, queueing the run again) is the service's,
agent_core.approvals; here are the options and the text.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from agent_core.cli.common import Commands, Context, Output, default_admin, document
from agent_core.enums import ApprovalStatus

if TYPE_CHECKING:
    from agent_core.models import Approval


def register(commands: Commands) -> None:
    approval = commands.group("approval", "risky actions waiting for a human")
    approval_list = approval.command("list", _approval_list, "approvals, newest first")
    approval_list.add_argument("--status", choices=[status.value for status in ApprovalStatus])
    approval_show = approval.command("show", _approval_show, "one approval and its notices")
    approval_show.add_argument("approval_id", metavar="ID")
    for name, handler, help_text in (
        ("approve", _approval_approve, "approve: the run resumes with exactly this call"),
        ("reject", _approval_reject, "reject: the run resumes and the agent is told why"),
    ):
        decide_parser = approval.command(name, handler, help_text)
        decide_parser.add_argument("approval_id", metavar="ID")
        decide_parser.add_argument(
            "--by", default=default_admin(), help="who decides (default: $USER)"
        )
        if name == "reject":
            decide_parser.add_argument("--reason", help="told to the agent")


# --- handlers ---------------------------------------------------------------------------------


def _approval_list(args: argparse.Namespace, context: Context) -> Output:
    from agent_core.render import format_table, format_time

    found = context.store().list_approvals(
        status=ApprovalStatus(args.status) if args.status else None
    )
    table = format_table(
        ["APPROVAL ID", "RUN ID", "TOOL", "STATUS", "EXPIRES", "DECIDED BY"],
        [
            [a.id, a.run_id, a.tool_name, a.status, format_time(a.expires_at), a.decided_by or "-"]
            for a in found
        ],
        empty="no approvals match",
    )
    return Output(document(found), table)


def _approval_show(args: argparse.Namespace, context: Context) -> Output:
    from agent_core.render import format_table, format_time, visible_json

    store = context.store()
    approval = store.get_approval(args.approval_id)
    notices = store.list_notifications(approval.id)
    result = {**document(approval), "notifications": document(notices)}
    lines = [
        f"approval     {approval.id} ({approval.status})",
        f"run          {approval.run_id}",
        f"tool         {approval.tool_name}",
        "arguments    " + visible_json(approval.args),
        f"why risky    {approval.risk_reason}",
        f"expires      {format_time(approval.expires_at)}",
        _decided_line(approval),
        "notifications:",
        format_table(
            ["CHANNEL", "KIND", "STATUS", "ATTEMPTS", "LAST ERROR"],
            [[n.channel, n.kind, n.status, n.attempts, n.last_error or "-"] for n in notices],
            empty="  (none)",
        ),
    ]
    return Output(result, "\n".join(lines))


def _approval_approve(args: argparse.Namespace, context: Context) -> Output:
    return _decided(context, args, approve=True, reason=None)


def _approval_reject(args: argparse.Namespace, context: Context) -> Output:
    return _decided(context, args, approve=False, reason=args.reason)


def _decided(
    context: Context, args: argparse.Namespace, *, approve: bool, reason: str | None
) -> Output:
    from agent_core.approvals import decide

    approval = decide(
        context.store(),
        context.settings,
        args.approval_id,
        approve=approve,
        by=args.by,
        reason=reason,
    )
    text = (
        f"approval {approval.id} {approval.status} by {approval.decided_by}; "
        f"run {approval.run_id} is queued again (a worker, or "
        f"`.venv/bin/python -m agent_core run resume {approval.run_id} --wait`, carries it on)"
    )
    return Output(document(approval), text)


def _decided_line(approval: Approval) -> str:
    """Who decided and when; an expired request was decided by nobody."""
    from agent_core.render import format_time

    if approval.status is ApprovalStatus.PENDING:
        return "decided      not yet"
    if approval.status is ApprovalStatus.EXPIRED:
        return f"decided      nobody: it expired at {format_time(approval.expires_at)}"
    reason = f" ({approval.decision_reason})" if approval.decision_reason else ""
    by = approval.decided_by or "an admin"
    return f"decided      by {by} at {format_time(approval.decided_at)}{reason}"
