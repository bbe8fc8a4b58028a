"""Approvals: the requests that pause a run, read, decided and expired.

A decision is taken once (the row is locked; a second admin is told who decided first) and
queues the run again in the same transaction. An approval nobody decided in time expires:
its run fails with approval_expired, and the call is never shown as rejected."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from agent_core import events as ledger_events
from agent_core.errors import Conflict, NotFound
from agent_core.events import EventType
from agent_core.models import (
    Approval,
    ApprovalStatus,
    RunStatus,
    StepStatus,
    StopReason,
    ToolCallStatus,
    admin_name,
    storable_text,
)
from agent_core.render import why_undecidable
from agent_core.store.base import (
    StoreBase,
    as_approval,
    as_run,
    driver_cursor,
    parse_id,
)
from agent_core.store.ledger import (
    CALL_HASH,
    STEP_ID,
    STEP_STATUS,
    to_json_value,
    tool_args_hash,
    with_step_digests,
)
from agent_core.store.schema import approvals, events, tool_calls
from agent_core.store.signing import LedgerKey
from agent_core.store.steps import close_unapproved_step


class ApprovalStore(StoreBase):
    """Approvals as the admin and maintenance see them."""

    def get_approval(self, approval_id: str) -> Approval:
        key = parse_id(approval_id, "approval")
        with self._transaction(write=False) as conn:
            row = conn.execute(approvals.select().where(approvals.c.id == key)).one_or_none()
        if row is None:
            raise NotFound(f"no approval has id {approval_id}")
        return as_approval(row)

    def list_approvals(
        self, *, status: ApprovalStatus | None = None, limit: int = 100
    ) -> list[Approval]:
        query = approvals.select().order_by(approvals.c.created_at.desc(), approvals.c.id)
        if status is not None:
            query = query.where(approvals.c.status == status)
        with self._transaction(write=False) as conn:
            return [as_approval(row) for row in conn.execute(query.limit(limit))]

    def decide_approval(
        self,
        approval_id: str,
        *,
        approve: bool,
        by: str,
        signing_key: LedgerKey,
        reason: str | None = None,
        approved_args: dict[str, Any] | None = None,
    ) -> Approval:
        """Record an admin's decision and put the run back in the queue, at once. Only a
        pending, unexpired approval of a paused run can be decided, and only once: of two
        admins clicking together, the second is told who decided first.

        `approved_args` approves with changes (already validated by the caller): the
        approval and its tool call then hold exactly those arguments, their hash and their
        binding under `signing_key`, the approval keeps the original ones, and the ledger records
        both. The decision itself is signed under `signing_key`; the run checks both signatures
        before the call is made.

        An approval requested before bindings existed is bound here, by the deciding process
        (which holds the key), to the arguments the admin is deciding on, provided they are
        still those the ledger recorded in its approval_requested event; otherwise it stays
        unbound and its run refuses to make the call (approval_invalid)."""
        key_id = parse_id(approval_id, "approval")
        by, reason = admin_name(by), storable_text(reason)
        now = self.now()
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        with self._transaction(write=True) as conn:
            # Locked (PostgreSQL; SQLite's write lock already serialises): a second admin
            # waits here and then reads the first one's decision.
            current = conn.execute(
                approvals.select().where(approvals.c.id == key_id).with_for_update()
            ).one_or_none()
            if current is None:
                raise NotFound(f"no approval has id {approval_id}")
            run = as_run(self._run_row(conn, current.run_id, current.run_id))
            refusal = why_undecidable(as_approval(current), run, now)
            if refusal:
                raise Conflict(refusal)
            values: dict[str, Any] = {
                "status": status,
                "decided_by": by,
                "decided_at": now,
                "decision_reason": reason,
            }
            args_hash = current.args_hash
            if approved_args is not None:
                if not approve:
                    raise Conflict("arguments can be changed only when approving")
                stored_args = to_json_value(approved_args)
                args_hash = tool_args_hash(current.tool_name, stored_args)
                values |= {
                    "args": stored_args,
                    "args_hash": args_hash,
                    "original_args": current.args,
                    "binding": signing_key.binding_of(current, args=stored_args),
                }
            elif approve and _needs_binding_again(conn, current, signing_key):
                values["binding"] = signing_key.binding_of(current)
            values["decision_signature"] = signing_key.decision(
                approval_id=key_id,
                decision=status,
                by=by,
                decided_at=now,
                reason=reason,
                args_hash=args_hash,
            )
            decided = conn.execute(
                approvals.update()
                .where(
                    approvals.c.id == key_id,
                    approvals.c.status == ApprovalStatus.PENDING,
                    approvals.c.expires_at > now,
                )
                .values(**values)
                .returning(approvals)
            ).one_or_none()
            if decided is None:  # decided meanwhile by someone else
                latest = conn.execute(approvals.select().where(approvals.c.id == key_id)).one()
                raise Conflict(why_undecidable(as_approval(latest), run, now) or "try again")
            if approved_args is not None:
                conn.execute(
                    tool_calls.update()
                    .where(tool_calls.c.id == current.tool_call_id)
                    .values(args=decided.args, args_hash=args_hash)
                )
            decided_events = [
                ledger_events.approval_decided(
                    approval_id=key_id,
                    decision=status,
                    by=by,
                    reason=reason,
                    tool=current.tool_name,
                    args_hash=args_hash,
                    original_args_hash=current.args_hash if approved_args is not None else None,
                    approved_args=decided.args if approved_args is not None else None,
                )
            ]
            if approved_args is not None:  # the call now holds the approved arguments
                decided_events = with_step_digests(
                    decided_events,
                    {
                        STEP_ID: current.step_id,
                        STEP_STATUS: StepStatus.AWAITING_APPROVAL.value,
                        CALL_HASH: args_hash,
                    },
                )
            self._write_run(
                driver_cursor(conn),
                current.run_id,
                set_values={"status": RunStatus.QUEUED},
                new_events=decided_events,
            )
        return as_approval(decided)

    def expire_approvals(self) -> list[Approval]:
        """Pending approvals past their expiry become `expired` (never `rejected`), and their
        runs end failed with stop_reason approval_expired."""
        now = self.now()
        with self._transaction(write=False) as conn:
            due = (
                conn.execute(
                    sa.select(approvals.c.id).where(
                        approvals.c.status == ApprovalStatus.PENDING, approvals.c.expires_at <= now
                    )
                )
                .scalars()
                .all()
            )
        expired = []
        for key in due:
            with self._transaction(write=True) as conn:
                row = conn.execute(
                    approvals.update()
                    .where(approvals.c.id == key, approvals.c.status == ApprovalStatus.PENDING)
                    .values(status=ApprovalStatus.EXPIRED, decided_at=now)
                    .returning(approvals)
                ).one_or_none()
                if row is None:
                    continue
                digests = close_unapproved_step(
                    conn,
                    as_approval(row),
                    ToolCallStatus.EXPIRED,
                    "not executed: the approval expired without a decision",
                    now=self.now,
                )
                error = f"the approval for {row.tool_name} expired without a decision"
                self._write_run(
                    driver_cursor(conn),
                    row.run_id,
                    set_values={
                        "status": RunStatus.FAILED,
                        "stop_reason": StopReason.APPROVAL_EXPIRED,
                        "error": error,
                        "completed_at": now,
                        "lease_owner": None,
                        "lease_expires_at": None,
                    },
                    new_events=with_step_digests(
                        [
                            ledger_events.approval_expired(
                                approval_id=key, tool=row.tool_name, expired_at=row.expires_at
                            ),
                            ledger_events.run_failed(
                                stop_reason=StopReason.APPROVAL_EXPIRED, error=error
                            ),
                        ],
                        digests,
                    ),
                )
                expired.append(as_approval(row))
        return expired


def _as_requested(conn: sa.Connection, approval: Row[Any]) -> bool:
    """The approval's tool and arguments are still those its run's ledger recorded when
    approval was requested (the approval_requested event)."""
    requested = conn.execute(
        sa.select(events.c.data).where(
            events.c.run_id == approval.run_id,
            events.c.event_type == EventType.APPROVAL_REQUESTED.value,
        )
    ).scalars()
    return any(
        data.get("approval_id") == approval.id
        and data.get("tool") == approval.tool_name
        and data.get("args") == approval.args
        for data in requested
        if isinstance(data, dict)
    )


def _needs_binding_again(conn: sa.Connection, current: Row[Any], signing_key: LedgerKey) -> bool:
    """Whether an approval about to be approved as it stands must be bound (again) by the
    deciding process, which holds the key: one requested before bindings existed, whose
    arguments are still those its approval_requested event recorded, or one bound before
    its run, step, call and expiry were (its first binding still matching)."""
    if current.binding is None:
        return _as_requested(conn, current)
    return LedgerKey.matches(current.binding, signing_key.first_binding_of(current))
