"""The ledger's seals: written by maintenance, checked by `ledger verify`.

A seal covers the events appended since the previous seal: for each run whose ledger grew,
one entry with its head (run, seq, hash). The seal row holds its sequence number, its time,
how many entries it has and their digest, the previous seal's signature, and its own
signature over all of that under the secret key, so seals form a signed chain (the model:
CloudTrail's digest files). A sealed head must exist forever after with the same hash,
unless a signed prune checkpoint covers it: a run deleted whole, or a chain rewritten with
recomputed hashes up to a sealed event, is then named by `ledger verify`.

The first seal ever written also adopts the prune checkpoints written before seals existed
(it signs them), as it covers every run's ledger as it stands then.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from agent_core.models import Seal, SealBreak
from agent_core.store.base import PRUNE_SETTING, StoreBase
from agent_core.store.schema import (
    events,
    ledger_checkpoints,
    ledger_seal_entries,
    ledger_seals,
    runs,
)
from agent_core.store.signing import FIRST_SEAL_PREVIOUS, LedgerKey, SealEntry, entries_digest

# Two maintenance passes (two workers) may seal at once on PostgreSQL: one waits.
_SEAL_LOCK_KEY = 0x5345414C  # "SEAL"


class SealStore(StoreBase):
    """Writing seals; checking them is `check_seals`, used by `verify_ledger`."""

    def seal_ledger(self, signing_key: LedgerKey) -> Seal:
        """Write the next seal: the head of every run whose ledger grew since it was last
        sealed, signed and chained to the previous seal. A pass with nothing new still writes
        a seal (with no entries), so that the time of the last seal shows maintenance runs."""
        with self._transaction(write=True) as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SEAL_LOCK_KEY)))
            last = conn.execute(
                sa.select(ledger_seals).order_by(ledger_seals.c.seq.desc()).limit(1)
            ).one_or_none()
            entries = _changed_heads(conn)
            now = self.now()
            count, digest = entries_digest(entries)
            seq = last.seq + 1 if last else 1
            prev_signature = last.signature if last else FIRST_SEAL_PREVIOUS
            signature = signing_key.seal(
                seq=seq,
                sealed_at=now,
                entries_count=count,
                entries_digest=digest,
                prev_signature=prev_signature,
            )
            conn.execute(
                ledger_seals.insert().values(
                    seq=seq,
                    sealed_at=now,
                    entries_count=count,
                    entries_digest=digest,
                    prev_signature=prev_signature,
                    signature=signature,
                )
            )
            if entries:
                conn.execute(
                    ledger_seal_entries.insert(),
                    [
                        {"seal_seq": seq, "run_id": e.run_id, "seq": e.seq, "hash": e.hash}
                        for e in entries
                    ],
                )
            adopted = self._adopt_checkpoints(conn, signing_key) if last is None else 0
        return Seal(
            seq=seq,
            sealed_at=now,
            entries_count=count,
            entries_digest=digest,
            prev_signature=prev_signature,
            signature=signature,
            checkpoints_adopted=adopted,
        )

    def _adopt_checkpoints(self, conn: sa.Connection, key: LedgerKey) -> int:
        """Sign the checkpoints written before seals existed (the first seal only)."""
        unsigned = conn.execute(
            sa.select(ledger_checkpoints).where(ledger_checkpoints.c.signature.is_(None))
        ).all()
        if not unsigned:
            return 0
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.set_config(PRUNE_SETTING, "on", True)))
        for row in unsigned:
            conn.execute(
                ledger_checkpoints.update()
                .where(ledger_checkpoints.c.run_id == row.run_id)
                .values(signature=checkpoint_signature(key, row))
            )
        return len(unsigned)


def _changed_heads(conn: sa.Connection) -> list[SealEntry]:
    """Every run whose head is past its last sealed event, with the head's hash (from the
    event, or from the checkpoint when the prune removed it)."""
    last_sealed = (
        sa.select(sa.func.max(ledger_seal_entries.c.seq))
        .where(ledger_seal_entries.c.run_id == runs.c.id)
        .scalar_subquery()
    )
    query = (
        sa.select(
            runs.c.id,
            runs.c.event_seq,
            events.c.hash,
            ledger_checkpoints.c.seq.label("checkpoint_seq"),
            ledger_checkpoints.c.hash.label("checkpoint_hash"),
        )
        .select_from(
            runs.outerjoin(
                events, sa.and_(events.c.run_id == runs.c.id, events.c.seq == runs.c.event_seq)
            ).outerjoin(ledger_checkpoints, ledger_checkpoints.c.run_id == runs.c.id)
        )
        .where(runs.c.event_seq > sa.func.coalesce(last_sealed, 0))
    )
    heads = []
    for row in conn.execute(query):
        if row.hash is not None:
            heads.append(SealEntry(row.id, row.event_seq, row.hash))
        elif row.checkpoint_seq == row.event_seq:
            heads.append(SealEntry(row.id, row.event_seq, row.checkpoint_hash))
        # Otherwise the head event is gone without a checkpoint: not sealed; verify names it.
    return heads


def checkpoint_signature(key: LedgerKey, row: Row[Any]) -> str:
    return key.checkpoint(run_id=row.run_id, seq=row.seq, hash=row.hash, pruned_at=row.pruned_at)


@dataclass
class SealCheck:
    """What the seals say: their own breaks, and the newest sealed head of each run."""

    breaks: list[SealBreak] = field(default_factory=list)
    heads: dict[str, tuple[int, str, int]] = field(default_factory=dict)  # run: seq, hash, seal
    seals_checked: int = 0
    first_at: datetime | None = None
    last_seq: int | None = None
    last_at: datetime | None = None


def check_seals(conn: sa.Connection, key: LedgerKey, run_key: str | None = None) -> SealCheck:
    """Check every seal's signature and its link to the previous one, and that its entries
    still hash to its digest (with `run_key`, only the seals holding that run's entries are
    re-hashed). One pass over the seals, one over the entries, in seal order."""
    found = SealCheck()
    seals: dict[int, Row[Any]] = {}
    expected, previous = 1, FIRST_SEAL_PREVIOUS
    for seal in conn.execute(sa.select(ledger_seals).order_by(ledger_seals.c.seq)):
        seals[seal.seq] = seal
        found.seals_checked += 1
        found.first_at = found.first_at or seal.sealed_at
        found.last_seq, found.last_at = seal.seq, seal.sealed_at
        problem = None
        if seal.seq != expected:
            gone = (
                f"seal {expected} is missing"
                if seal.seq == expected + 1
                else f"seals {expected} to {seal.seq - 1} are missing"
            )
            found.breaks.append(
                SealBreak(seal=expected, problem=f"{gone}: deleted from the database")
            )
        elif seal.prev_signature != previous:
            problem = "does not link to the seal before it: a seal was replaced here"
        expected_signature = key.seal(
            seq=seal.seq,
            sealed_at=seal.sealed_at,
            entries_count=seal.entries_count,
            entries_digest=seal.entries_digest,
            prev_signature=seal.prev_signature,
        )
        if problem is None and not key.matches(seal.signature, expected_signature):
            problem = (
                "its signature is not this runtime's: the seal was altered or forged (or "
                "AGENT_SECRET_KEY was changed since it was written)"
            )
        if problem:
            found.breaks.append(SealBreak(seal=seal.seq, problem=problem))
        expected, previous = seal.seq + 1, seal.signature

    query = sa.select(ledger_seal_entries).order_by(
        ledger_seal_entries.c.seal_seq, ledger_seal_entries.c.run_id
    )
    if run_key is not None:
        holding = sa.select(ledger_seal_entries.c.seal_seq).where(
            ledger_seal_entries.c.run_id == run_key
        )
        query = query.where(ledger_seal_entries.c.seal_seq.in_(holding))
    rehashed: set[int] = set()
    broken = {item.seal for item in found.breaks}  # one problem per seal is enough
    rows = conn.execute(query.execution_options(yield_per=5000))
    for seal_seq, group in itertools.groupby(rows, key=lambda row: row.seal_seq):
        entries = [SealEntry(row.run_id, row.seq, row.hash) for row in group]
        rehashed.add(seal_seq)
        for entry in entries:
            if run_key is None or entry.run_id == run_key:
                newest = found.heads.get(entry.run_id)
                if newest is None or entry.seq > newest[0]:
                    found.heads[entry.run_id] = (entry.seq, entry.hash, seal_seq)
        seal = seals.get(seal_seq)
        if seal is None:
            if found.last_seq is None or seal_seq > found.last_seq:
                found.breaks.append(
                    SealBreak(
                        seal=seal_seq,
                        problem="the seal is gone but its entries remain: the newest seals "
                        "were deleted from the database",
                    )
                )
            continue
        if seal_seq not in broken and entries_digest(entries) != (
            seal.entries_count,
            seal.entries_digest,
        ):
            found.breaks.append(SealBreak(seal=seal_seq, problem=_ENTRIES_CHANGED))
    if run_key is None:
        empty = entries_digest([])
        for seal in seals.values():
            unseen = seal.seq not in rehashed and seal.seq not in broken
            if unseen and (seal.entries_count, seal.entries_digest) != empty:
                found.breaks.append(SealBreak(seal=seal.seq, problem=_ENTRIES_CHANGED))
    found.breaks.sort(key=lambda item: item.seal)
    return found


_ENTRIES_CHANGED = (
    "its entries no longer match its digest: a sealed run head was changed, added or removed"
)
