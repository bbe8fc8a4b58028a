"""Deciding approvals: who may, with which arguments, and through which door (the
dashboard or CLI behind its login, or a signed link from a notification).

Executing the approved call happens when the run resumes (agent_core.loop.resume); expiring
happens in maintenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_core.config import Settings, ledger_key
from agent_core.errors import ConfigError, InvalidFields, InvalidInput
from agent_core.links import InvalidLink, LinkClaim, read_link
from agent_core.models import Approval, ApprovalStatus, ApprovalView
from agent_core.store import Store
from agent_core.tools import ToolRegistry, gateway

MAX_ARGS_DEPTH = 32  # what an admin may type as changed arguments; tools need far less


def decide(
    store: Store,
    settings: Settings,
    approval_id: str,
    *,
    approve: bool,
    by: str,
    reason: str | None = None,
    args: Mapping[str, Any] | None = None,
    tools: ToolRegistry | None = None,
) -> Approval:
    """Approve or reject. With AGENT_APPROVERS set, only those names may decide.

    `args` approves with changes: the admin's edited arguments, validated against the
    tool's argument model (`tools` is required then), become exactly what runs; the ledger
    keeps the original beside them, and the agent is told they changed.

    The decision is signed, and the call bound, under AGENT_SECRET_KEY (ConfigError without
    it): the worker checks both before making the call.
    """
    by = allowed_approver(settings, by)
    return _record(store, settings, approval_id, approve, by, reason, args, tools)


def allowed_approver(settings: Settings, by: str) -> str:
    """`by`, stripped, if it may decide: anyone named, or one of AGENT_APPROVERS if set."""
    by = by.strip()
    if not by:
        raise InvalidInput("say who decides (--by NAME)")
    if settings.agent_approvers and by not in settings.agent_approvers:
        raise InvalidInput(
            f"{by!r} may not decide approvals; AGENT_APPROVERS allows: "
            + ", ".join(settings.agent_approvers)
        )
    return by


def _record(
    store: Store,
    settings: Settings,
    approval_id: str,
    approve: bool,
    by: str,
    reason: str | None,
    args: Mapping[str, Any] | None,
    tools: ToolRegistry | None,
) -> Approval:
    """The decision of `by` (already checked), signed and written to the ledger."""
    key = ledger_key(settings)  # the decision is signed, and the approval bound
    cleaned = reason.strip() if reason else None
    changed = None
    if args is not None:
        if not approve:
            raise InvalidInput("arguments can be changed only when approving")
        current = store.get_approval(approval_id)
        changed = checked_arguments(current, args, tools)
        if changed == current.args:
            changed = None
    return store.decide_approval(
        approval_id,
        approve=approve,
        by=by,
        signing_key=key,
        reason=cleaned or None,
        approved_args=changed,
    )


def checked_arguments(
    approval: Approval, args: Mapping[str, Any], tools: ToolRegistry | None
) -> dict[str, Any]:
    """`args` if the approval's tool accepts them; InvalidFields naming the problem else."""
    tool = tools.get(approval.tool_name) if tools is not None else None
    if tool is None:
        raise InvalidFields({"args": f"the tool {approval.tool_name} is not available here"})
    if not isinstance(args, Mapping):
        raise InvalidFields({"args": "the arguments must be a JSON object"})
    if _depth(args) > MAX_ARGS_DEPTH:
        raise InvalidFields(
            {"args": f"the arguments are nested more than {MAX_ARGS_DEPTH} levels deep"}
        )
    parsed = gateway.validate_args(tool, dict(args))
    if isinstance(parsed, str):
        raise InvalidFields({"args": parsed})
    return dict(args)


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (without recursion: any depth is safe)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            deepest = max(deepest, level)
            if level > MAX_ARGS_DEPTH:
                break
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def link_secret(settings: Settings) -> str:
    if settings.agent_secret_key is None:
        raise ConfigError(
            "approval links need AGENT_SECRET_KEY: start the dashboard with "
            "`.venv/bin/python -m agent_core up`, which generates it, or set it yourself"
        )
    return settings.agent_secret_key.get_secret_value()


def open_link(store: Store, settings: Settings, token: str) -> tuple[LinkClaim, ApprovalView]:
    """The approval a signed link opens, if it can still be decided through it; otherwise
    InvalidLink, one sentence that shows no data of the approval."""
    claim = read_link(link_secret(settings), token, now=store.now())
    try:
        view = store.approval_view(claim.approval_id)
    except InvalidInput:
        raise InvalidLink("this approval link is not valid any more") from None
    approval = view.approval
    if approval.args_hash != claim.args_hash:
        raise InvalidLink(
            "this approval link is not valid any more: the request it was sent for has changed"
        )
    if approval.status is not ApprovalStatus.PENDING:
        raise InvalidLink(
            "this approval link was already used, or the request was decided another way: "
            "open the dashboard to see the decision"
        )
    if approval.expires_at <= store.now():
        raise InvalidLink("this approval link has expired: the request can no longer be decided")
    return claim, view


def decide_by_link(
    store: Store,
    settings: Settings,
    token: str,
    *,
    approve: bool,
    by: str | None = None,
    reason: str | None = None,
) -> Approval:
    """Decide the one approval a signed link was sent for, once.

    A token proves only that its holder reads the recipient's inbox or phone, so the ledger
    always says so: "<recipient> (via <channel> link)", or, when the holder names themself
    (one of AGENT_APPROVERS when that is set), "<name> (via <channel> link to <recipient>)".
    A bare approver's name is never recorded for a link."""
    claim, view = open_link(store, settings, token)
    recipient = claim.recipient or "admin"
    if by and by.strip():
        who = f"{allowed_approver(settings, by)} (via {claim.channel} link to {recipient})"
    else:
        who = f"{recipient} (via {claim.channel} link)"
    return _record(store, settings, view.approval.id, approve, who, reason, None, None)
