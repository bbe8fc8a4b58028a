"""The ledger as stored: appending, listing, verifying and pruning events.

The hash chain is computed by the pure functions of ledger.py; appends go through
`_write_run` (base.py) so that the run's ledger head moves with them. The retention prune is
the only deletion: it leaves a checkpoint per run, and on PostgreSQL the append-only trigger
lets it through only inside a transaction that set PRUNE_SETTING."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from agent_core.errors import NotFound
from agent_core.models import (
    Event,
    LedgerBreak,
    LedgerReport,
    NewEvent,
    RunStatus,
)
from agent_core.store.base import (
    StoreBase,
    as_event,
    parse_id,
    upsert_builder,
)
from agent_core.store.ledger import (
    ChainAnchor,
    ChainLink,
    verify_chain,
)
from agent_core.store.schema import (
    events,
    ledger_checkpoints,
    runs,
)

# Set for the duration of a prune transaction; the PostgreSQL ledger trigger lets only such a
# transaction delete events (see the initial migration).
PRUNE_SETTING = "app_agent.prune"


class EventLogStore(StoreBase):
    """The ledger as stored; the hash chain itself is computed in ledger.py."""

    def append_events(self, run_id: str, new_events: Sequence[NewEvent]) -> list[Event]:
        key = parse_id(run_id, "run")
        with self._hot_transaction() as cursor:
            _, written = self._write_run(cursor, key, new_events=new_events)
        return written

    def list_events(self, run_id: str) -> list[Event]:
        key = parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                events.select().where(events.c.run_id == key).order_by(events.c.seq)
            )
            return [as_event(row) for row in rows]

    def verify_ledger(self, run_id: str | None = None) -> LedgerReport:
        """Recompute every run's hash chain (or one run's) and name the first broken event."""
        run_filter = runs.c.id == parse_id(run_id, "run") if run_id else sa.true()
        event_filter = events.c.run_id == parse_id(run_id, "run") if run_id else sa.true()
        with self._transaction(write=False) as conn:
            heads = {
                row.id: ChainAnchor(row.event_seq, None)
                for row in conn.execute(sa.select(runs.c.id, runs.c.event_seq).where(run_filter))
            }
            if run_id and not heads:
                raise NotFound(f"no run has id {run_id}")
            checkpoints = {
                row.run_id: ChainAnchor(row.seq, row.hash)
                for row in conn.execute(sa.select(ledger_checkpoints))
            }
            rows = conn.execution_options(yield_per=2000).execute(
                sa.select(events).where(event_filter).order_by(events.c.run_id, events.c.seq)
            )
            breaks: list[LedgerBreak] = []
            events_checked = 0
            verified: set[str] = set()
            for chain_run_id, chain_rows in itertools.groupby(rows, key=lambda row: row.run_id):
                checked, broken = verify_chain(
                    chain_run_id,
                    (_chain_link(row) for row in chain_rows),
                    checkpoint=checkpoints.get(chain_run_id),
                    head=heads.get(chain_run_id, ChainAnchor(0, None)),
                )
                events_checked += checked
                verified.add(chain_run_id)
                if broken:
                    breaks.append(
                        LedgerBreak(run_id=chain_run_id, seq=broken[0], problem=broken[1])
                    )
            for quiet_run_id in heads.keys() - verified:
                _, broken = verify_chain(
                    quiet_run_id,
                    (),
                    checkpoint=checkpoints.get(quiet_run_id),
                    head=heads[quiet_run_id],
                )
                if broken:
                    breaks.append(
                        LedgerBreak(run_id=quiet_run_id, seq=broken[0], problem=broken[1])
                    )
        return LedgerReport(runs_checked=len(heads), events_checked=events_checked, breaks=breaks)

    def prune_events(self, *, older_than: datetime) -> int:
        """Delete ended runs' events older than `older_than`, leaving a checkpoint per run so
        that the chain of what remains still verifies. Returns how many events were deleted."""
        old = sa.case((events.c.created_at < older_than, events.c.seq))
        new = sa.case((events.c.created_at >= older_than, events.c.seq))
        candidates = (
            sa.select(
                events.c.run_id,
                sa.func.max(old).label("last_old"),
                sa.func.min(new).label("first_new"),
            )
            .join(runs, runs.c.id == events.c.run_id)
            .where(runs.c.status.in_([s.value for s in RunStatus if s.is_final]))
            .group_by(events.c.run_id)
            .having(sa.func.max(old).is_not(None))
        )
        with self._transaction(write=False) as conn:
            plan = [
                (
                    row.run_id,
                    row.last_old if row.first_new is None else min(row.last_old, row.first_new - 1),
                )
                for row in conn.execute(candidates)
            ]
        deleted = 0
        for run_key, last_pruned in plan:
            if last_pruned < 1:
                continue
            with self._transaction(write=True) as conn:
                deleted += self._prune_run(conn, run_key, last_pruned)
        return deleted

    def _prune_run(self, conn: sa.Connection, run_key: str, last_pruned: int) -> int:
        anchor = conn.execute(
            sa.select(events.c.hash).where(events.c.run_id == run_key, events.c.seq == last_pruned)
        ).scalar_one_or_none()
        if anchor is None:  # pruned meanwhile by another worker's maintenance
            return 0
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.set_config(PRUNE_SETTING, "on", True)))
        insert = upsert_builder(self.dialect)(ledger_checkpoints).values(
            run_id=run_key, seq=last_pruned, hash=anchor, pruned_at=self.now()
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[ledger_checkpoints.c.run_id],
                set_={"seq": last_pruned, "hash": anchor, "pruned_at": self.now()},
            )
        )
        result = conn.execute(
            events.delete().where(events.c.run_id == run_key, events.c.seq <= last_pruned)
        )
        return result.rowcount or 0


def _chain_link(row: Row[Any]) -> ChainLink:
    return ChainLink(
        seq=row.seq,
        event_type=row.event_type,
        data=row.data,
        created_at=row.created_at,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
