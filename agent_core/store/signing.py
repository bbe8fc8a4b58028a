"""The keyed half of the ledger: signatures under the runtime's secret key, pure functions.

The hash chain (ledger.py) detects an edit made by someone who does not recompute the
hashes. Against someone who can write the whole database, these signatures bind what they
cannot recompute without AGENT_SECRET_KEY, which is kept outside the database:

- an approval's binding: its id, tool and canonical arguments, the run, step and tool call
  it belongs to and its expiry, written when approval is requested and when an admin
  approves (with changes or not): moved to another run, or kept past its expiry, an
  approved call no longer matches and is not made;
- an admin's decision: the approval id, the decision, who, when, the reason and the
  arguments' hash;
- a prune checkpoint: the run, the last pruned event and its hash;
- a seal: the heads of the runs that changed since the previous seal (their digest) and the
  previous seal's signature, so that seals form a chain of their own.

Every signature is HMAC-SHA256 under a key derived from AGENT_SECRET_KEY for this purpose
only (approval links sign with the secret itself), over a purpose tag and canonical JSON, so
that a signature of one kind is never valid as another.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agent_core.store.ledger import GENESIS_HASH, canonical_json, canonical_time, to_json_value

# The previous signature of the first seal.
FIRST_SEAL_PREVIOUS = GENESIS_HASH


@dataclass(frozen=True, slots=True)
class SealEntry:
    """One run's ledger head as a seal records it."""

    run_id: str
    seq: int
    hash: str


def entries_digest(entries: Iterable[SealEntry]) -> tuple[int, str]:
    """How many entries, and the SHA-256 of them in run order (the order they are given in
    does not matter)."""
    digest = hashlib.sha256()
    count = 0
    for entry in sorted(entries, key=lambda item: item.run_id):
        digest.update(f"{entry.run_id} {entry.seq} {entry.hash}\n".encode("ascii"))
        count += 1
    return count, digest.hexdigest()


class BoundApproval(Protocol):
    """An approval as stored (its row, or the Approval read from it): what its binding
    covers."""

    id: Any
    tool_name: str
    args: Any
    run_id: Any
    step_id: Any
    tool_call_id: Any
    expires_at: datetime


class LedgerKey:
    """Signs and checks under the runtime's secret key. Built from AGENT_SECRET_KEY by
    `config.ledger_key`; the secret itself is never kept or shown."""

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the ledger key needs a non-empty secret")
        self._key = hmac.new(
            secret.encode("utf-8"), b"agent-runtime ledger signing key v1", hashlib.sha256
        ).digest()

    def __repr__(self) -> str:
        return "LedgerKey(<hidden>)"

    def _sign(self, purpose: str, fields: dict[str, Any]) -> str:
        message = f"{purpose}\n{canonical_json(fields)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    @staticmethod
    def matches(signature: str | None, expected: str) -> bool:
        return signature is not None and hmac.compare_digest(signature, expected)

    def approval_binding(
        self,
        *,
        approval_id: str,
        tool: str,
        args: Any,
        run_id: str,
        step_id: str,
        tool_call_id: str,
        expires_at: datetime,
    ) -> str:
        """What the admin is shown and what runs after approval: this tool with these
        arguments, as this call of this step of this run, until this time."""
        return self._sign(
            "approval-binding-v2",
            {
                "approval_id": _canonical_id(approval_id),
                "tool": tool,
                "args": to_json_value(args),
                "run_id": _canonical_id(run_id),
                "step_id": _canonical_id(step_id),
                "tool_call_id": _canonical_id(tool_call_id),
                "expires_at": canonical_time(expires_at),
            },
        )

    def binding_of(self, approval: BoundApproval, *, args: Any = None) -> str:
        """`approval_binding` of a stored approval; with `args`, of those arguments in
        place of its own (an admin approving with changes)."""
        return self.approval_binding(
            approval_id=approval.id,
            tool=approval.tool_name,
            args=approval.args if args is None else args,
            run_id=approval.run_id,
            step_id=approval.step_id,
            tool_call_id=approval.tool_call_id,
            expires_at=approval.expires_at,
        )

    def first_binding_of(self, approval: BoundApproval) -> str:
        """`first_approval_binding` of a stored approval."""
        return self.first_approval_binding(
            approval_id=approval.id, tool=approval.tool_name, args=approval.args
        )

    def first_approval_binding(self, *, approval_id: str, tool: str, args: Any) -> str:
        """The binding approvals had before their run, step, call and expiry were bound (the
        id, tool and arguments): recognised only to bind a pending approval again, in full,
        when an admin decides it; never enough for a call to run."""
        return self._sign(
            "approval-binding",
            {"approval_id": _canonical_id(approval_id), "tool": tool, "args": to_json_value(args)},
        )

    def decision(
        self,
        *,
        approval_id: str,
        decision: str,
        by: str | None,
        decided_at: datetime | None,
        reason: str | None,
        args_hash: str,
    ) -> str:
        """An admin's decision on one approval, for the arguments hashing to `args_hash`."""
        return self._sign(
            "approval-decision",
            {
                "approval_id": _canonical_id(approval_id),
                "decision": str(decision),
                "by": by,
                "decided_at": canonical_time(decided_at) if decided_at else None,
                "reason": reason,
                "args_hash": args_hash,
            },
        )

    def checkpoint(self, *, run_id: str, seq: int, hash: str, pruned_at: datetime) -> str:
        """A prune done by the runtime: events 1 to `seq` of the run were deleted, the last
        of them hashing to `hash`."""
        return self._sign(
            "prune-checkpoint",
            {
                "run_id": _canonical_id(run_id),
                "seq": seq,
                "hash": hash,
                "pruned_at": canonical_time(pruned_at),
            },
        )

    def seal(
        self,
        *,
        seq: int,
        sealed_at: datetime,
        entries_count: int,
        entries_digest: str,
        prev_signature: str,
    ) -> str:
        """A seal: its entries (by count and digest), chained to the previous seal."""
        return self._sign(
            "ledger-seal",
            {
                "seq": seq,
                "sealed_at": canonical_time(sealed_at),
                "entries_count": entries_count,
                "entries_digest": entries_digest,
                "prev_signature": prev_signature,
            },
        )


def _canonical_id(value: str) -> str:
    return str(uuid.UUID(str(value)))
