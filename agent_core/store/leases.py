"""Leases: which worker executes a run, until when, and what happens when it dies.

A worker claims a run (queued, or running with a lapsed lease) and renews its lease by
heartbeat. Every write the worker then makes to the run is fenced by that lease
(`RunChanges.owner`, checked by `_write_run`), so a worker that lost its lease cannot write
over the new holder. A run whose lease lapsed is queued again and resumes from the ledger,
or fails with worker_lost after too many attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from agent_core import events as ledger_events
from agent_core.errors import LeaseLost
from agent_core.models import (
    NewEvent,
    Run,
    RunChanges,
    RunStatus,
    StopReason,
)
from agent_core.store.base import (
    StoreBase,
    driver_cursor,
    parse_id,
)
from agent_core.store.schema import (
    runs,
)


class LeaseStore(StoreBase):
    """Claims, lease renewals, releases and recovery of runs whose worker died."""

    def claim_run(self, run_id: str, *, owner: str, lease_s: float) -> Run | None:
        """Take a queued run, or a running one whose lease lapsed (its worker died), for
        `owner`. Returns None when the run is not claimable (someone else holds it, it is
        paused or it has ended)."""
        key = parse_id(run_id, "run")
        now = self.now()
        claimable = sa.or_(
            runs.c.status == RunStatus.QUEUED,
            sa.and_(runs.c.status == RunStatus.RUNNING, runs.c.lease_expires_at < now),
        )
        with self._transaction(write=True) as conn:
            previous = conn.execute(
                sa.select(runs.c.status, runs.c.lease_owner).where(runs.c.id == key, claimable)
            ).one_or_none()
            if previous is None:
                self._run_row(conn, key, run_id)  # NotFound if it does not exist at all
                return None
            event = ledger_events.run_claimed(
                owner=owner,
                from_status=previous.status,
                lease_lapsed_for=previous.lease_owner
                if previous.status == RunStatus.RUNNING
                else None,
            )
            return self._claim(driver_cursor(conn), key, owner=owner, lease_s=lease_s, event=event)

    def claim_next(self, *, owner: str, limit: int, lease_s: float) -> list[Run]:
        """Claim up to `limit` queued runs, oldest first. On PostgreSQL the rows are picked
        with FOR UPDATE SKIP LOCKED, so several workers never claim the same run and never
        wait for each other; on SQLite the write lock serialises claims."""
        if limit < 1:
            return []
        claimed = []
        # The claim is a write: on SQLite it takes the write lock, which every step of this
        # worker's runs waits for, so it runs as plain SQL on the hot path's connection.
        with self._hot_transaction() as cursor:
            for run_key in self._hot.queued_run_keys(cursor, limit):
                row = self._claim(
                    cursor,
                    run_key,
                    owner=owner,
                    lease_s=lease_s,
                    event=ledger_events.run_claimed(owner=owner, from_status=RunStatus.QUEUED),
                )
                if row is not None:
                    claimed.append(row)
        return claimed

    def _claim(
        self, cursor: Any, run_key: str, *, owner: str, lease_s: float, event: NewEvent
    ) -> Run | None:
        """The claim itself: running, leased to `owner`, counted as an attempt, and logged;
        only if the run is still claimable (None otherwise)."""
        now = self.now()
        row, _ = self._write_run(
            cursor,
            run_key,
            set_values={
                "status": RunStatus.RUNNING,
                "lease_owner": owner,
                "lease_expires_at": now + timedelta(seconds=lease_s),
            },
            first_values={"started_at": now},
            add={"attempts": 1},
            only_if_claimable=True,
            new_events=[event],
        )
        return row

    def renew_leases(self, *, owner: str, run_ids: Sequence[str], lease_s: float) -> list[str]:
        """Extend this worker's leases; returns the running runs another worker now holds
        (runs that ended or paused meanwhile are simply not renewed)."""
        if not run_ids:
            return []
        keys = [parse_id(run_id, "run") for run_id in run_ids]
        until = self.now() + timedelta(seconds=lease_s)
        with self._transaction(write=True) as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id.in_(keys), runs.c.lease_owner == owner)
                .values(lease_expires_at=until)
            )
            lost = conn.execute(
                sa.select(runs.c.id).where(
                    runs.c.id.in_(keys),
                    runs.c.status == RunStatus.RUNNING,
                    sa.or_(runs.c.lease_owner.is_(None), runs.c.lease_owner != owner),
                )
            )
            return sorted(lost.scalars().all())

    def release_run(self, run_id: str, *, owner: str, reason: str) -> Run | None:
        """Give a run this worker holds back to the queue (shutdown): another worker resumes
        it from the ledger. None when the worker no longer held it."""
        key = parse_id(run_id, "run")
        try:
            with self._hot_transaction() as cursor:
                row, _ = self._write_run(
                    cursor,
                    key,
                    changes=RunChanges(owner=owner, status=RunStatus.QUEUED, release_lease=True),
                    new_events=[ledger_events.run_released(owner=owner, reason=reason)],
                )
        except LeaseLost:
            return None
        return row

    def recover_lapsed_runs(self, *, max_attempts: int) -> tuple[list[str], list[str]]:
        """Runs left `running` by a worker that died (lease lapsed): queued again to resume
        from the ledger, or, after `max_attempts`, failed with stop_reason worker_lost.
        Returns (requeued, failed) run ids."""
        now = self.now()
        with self._transaction(write=False) as conn:
            lapsed = conn.execute(
                sa.select(runs.c.id, runs.c.attempts, runs.c.lease_owner).where(
                    runs.c.status == RunStatus.RUNNING, runs.c.lease_expires_at < now
                )
            ).all()
        requeued, failed = [], []
        for row in lapsed:
            give_up = row.attempts >= max_attempts
            values: dict[str, Any] = {
                "status": RunStatus.QUEUED,
                "lease_owner": None,
                "lease_expires_at": None,
            }
            event = ledger_events.run_requeued(
                lease_lapsed_for=row.lease_owner, attempts=row.attempts
            )
            if give_up:
                error = f"its worker stopped answering {row.attempts} times"
                values = {
                    **values,
                    "status": RunStatus.FAILED,
                    "stop_reason": StopReason.WORKER_LOST,
                    "error": error,
                    "completed_at": now,
                }
                event = ledger_events.run_failed(stop_reason=StopReason.WORKER_LOST, error=error)
            with self._transaction(write=True) as conn:
                still = conn.execute(
                    sa.select(runs.c.id).where(
                        runs.c.id == row.id,
                        runs.c.status == RunStatus.RUNNING,
                        runs.c.lease_expires_at < self.now(),
                    )
                ).first()
                if still is None:
                    continue
                self._write_run(driver_cursor(conn), row.id, set_values=values, new_events=[event])
            (failed if give_up else requeued).append(row.id)
        return requeued, failed
