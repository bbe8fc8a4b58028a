"""Deciding approvals: who may, and recording the decision so the run carries on.

Executing the approved call happens when the run resumes (agent_core.loop.resume); expiring happens
in maintenance.
"""

from __future__ import annotations

from agent_core.config import Settings
from agent_core.errors import InvalidInput
from agent_core.models import Approval
from agent_core.store import Store


def decide(
    store: Store,
    settings: Settings,
    approval_id: str,
    *,
    approve: bool,
    by: str,
    reason: str | None = None,
) -> Approval:
    """Approve or reject. With AGENT_APPROVERS set, only those names may decide."""
    by = by.strip()
    if not by:
        raise InvalidInput("say who decides (--by NAME)")
    if settings.agent_approvers and by not in settings.agent_approvers:
        raise InvalidInput(
            f"{by!r} may not decide approvals; AGENT_APPROVERS allows: "
            + ", ".join(settings.agent_approvers)
        )
    cleaned = reason.strip() if reason else None
    return store.decide_approval(approval_id, approve=approve, by=by, reason=cleaned or None)
