"""Runs: queued (by hand or for a schedule slot), read, changed and cancelled.

Which worker executes a run, and what happens when it dies, is in leases.py; the steps a
run writes are in steps.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from agent_core import events as ledger_events
from agent_core.errors import Conflict, NotFound
from agent_core.models import (
    ACTIVE_RUN_STATUSES,
    ApprovalStatus,
    NewEvent,
    Objective,
    Run,
    RunChanges,
    RunDetail,
    RunStatus,
    RunTrigger,
    StopReason,
    admin_name,
)
from agent_core.store.base import (
    StoreBase,
    as_approval,
    as_event,
    as_run,
    as_step,
    as_tool_call,
    driver_cursor,
    new_id,
    parse_id,
)
from agent_core.store.schema import (
    approvals,
    events,
    objectives,
    runs,
    steps,
    tool_calls,
)


class RunStore(StoreBase):
    """Creating, reading, changing and cancelling runs."""

    def create_run(self, objective_id: str, *, trigger: RunTrigger = RunTrigger.MANUAL) -> Run:
        """Queue a run. Its number comes from one atomic UPDATE ... RETURNING on the objective,
        so two runs started at the same instant never share a number."""
        key = parse_id(objective_id, "objective")
        with self._transaction(write=True) as conn:
            return self._insert_run(conn, key, trigger=trigger)

    def schedule_run(self, objective_id: str, slot: datetime) -> Run | None:
        """The run of a cron slot: queued, or recorded as skipped when the objective's
        previous run is still active. None when the slot already has its run (another worker
        created it: the unique key on objective and slot makes that exactly one)."""
        key = parse_id(objective_id, "objective")
        try:
            with self._transaction(write=True) as conn:
                taken = conn.execute(
                    sa.select(runs.c.id).where(
                        runs.c.objective_id == key, runs.c.schedule_slot == slot
                    )
                ).first()
                if taken is not None:
                    return None
                active = conn.execute(
                    sa.select(runs.c.id, runs.c.run_number).where(
                        runs.c.objective_id == key,
                        runs.c.status.in_([status.value for status in ACTIVE_RUN_STATUSES]),
                    )
                ).first()
                return self._insert_run(
                    conn, key, trigger=RunTrigger.SCHEDULE, slot=slot, skipped_for=active
                )
        except IntegrityError:
            return None

    def last_schedule_slot(self, objective_id: str) -> datetime | None:
        key = parse_id(objective_id, "objective")
        with self._transaction(write=False) as conn:
            return conn.execute(
                sa.select(sa.func.max(runs.c.schedule_slot)).where(runs.c.objective_id == key)
            ).scalar()

    def _insert_run(
        self,
        conn: sa.Connection,
        objective_key: str,
        *,
        trigger: RunTrigger,
        slot: datetime | None = None,
        skipped_for: Row[Any] | None = None,
    ) -> Run:
        now = self.now()
        run_number = conn.execute(
            objectives.update()
            .where(objectives.c.id == objective_key)
            .values(last_run_number=objectives.c.last_run_number + 1)
            .returning(objectives.c.last_run_number)
        ).scalar_one_or_none()
        if run_number is None:
            raise NotFound(f"no objective has id {objective_key}")
        run_id = new_id()
        values: dict[str, Any] = {
            "id": run_id,
            "objective_id": objective_key,
            "run_number": run_number,
            "status": RunStatus.QUEUED,
            "trigger": trigger,
            "schedule_slot": slot,
            "created_at": now,
            "updated_at": now,
        }
        new_events = [
            ledger_events.run_queued(
                objective_id=objective_key, run_number=run_number, trigger=trigger, slot=slot
            )
        ]
        if skipped_for is not None:
            values |= {
                "status": RunStatus.SKIPPED,
                "stop_reason": StopReason.PREVIOUS_RUN_ACTIVE,
                "error": f"run #{skipped_for.run_number} of this objective was still active",
                "completed_at": now,
            }
            assert slot is not None
            new_events = [
                ledger_events.run_skipped(
                    objective_id=objective_key,
                    run_number=run_number,
                    trigger=trigger,
                    slot=slot,
                    active_run_id=skipped_for.id,
                )
            ]
        conn.execute(runs.insert().values(values))
        row, _ = self._write_run(driver_cursor(conn), run_id, new_events=new_events)
        assert row is not None
        return row

    def get_run(self, run_id: str) -> Run:
        key = parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            return as_run(self._run_row(conn, key, run_id))

    def list_runs(
        self,
        *,
        objective_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[Run]:
        query = runs.select().order_by(runs.c.created_at.desc(), runs.c.run_number.desc())
        if objective_id is not None:
            query = query.where(runs.c.objective_id == parse_id(objective_id, "objective"))
        if status is not None:
            query = query.where(runs.c.status == status)
        with self._transaction(write=False) as conn:
            return [as_run(row) for row in conn.execute(query.limit(limit))]

    def run_detail(self, run_id: str) -> RunDetail:
        key = parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            run = as_run(self._run_row(conn, key, run_id))
            step_rows = conn.execute(
                steps.select().where(steps.c.run_id == key).order_by(steps.c.step_number)
            )
            call_rows = conn.execute(
                tool_calls.select()
                .where(tool_calls.c.run_id == key)
                .order_by(tool_calls.c.created_at, tool_calls.c.id)
            )
            event_rows = conn.execute(
                events.select().where(events.c.run_id == key).order_by(events.c.seq)
            )
            approval_rows = conn.execute(
                approvals.select()
                .where(approvals.c.run_id == key)
                .order_by(approvals.c.created_at, approvals.c.id)
            )
            return RunDetail(
                run=run,
                steps=[as_step(row) for row in step_rows],
                tool_calls=[as_tool_call(row) for row in call_rows],
                events=[as_event(row) for row in event_rows],
                approvals=[as_approval(row) for row in approval_rows],
            )

    def update_run(
        self, run_id: str, changes: RunChanges, new_events: Sequence[NewEvent] = ()
    ) -> Run:
        """Change the run (end it, count a repair attempt's tokens...) and log why."""
        key = parse_id(run_id, "run")
        head = self._heads.get(key)
        if head is not None:
            run = self._write_at_once(
                key, head, changes=changes, add=None, new_events=new_events, now=self.now()
            )
            if run is not None:
                return run
        with self._hot_transaction() as cursor:
            row, _ = self._write_run(cursor, key, changes=changes, new_events=new_events)
        assert row is not None
        return row

    def request_cancel(self, run_id: str, *, by: str = "admin") -> Run:
        """Cancel at once a run nobody is executing; ask a running one to stop before its
        next step."""
        key = parse_id(run_id, "run")
        by = admin_name(by)
        now = self.now()
        with self._transaction(write=True) as conn:
            current = as_run(self._run_row(conn, key, run_id))
            if current.status.is_final:
                raise Conflict(f"run {run_id} has already ended ({current.status})")
            if current.status is RunStatus.RUNNING:
                changes: dict[str, Any] = {"cancel_requested_at": now}
                event = ledger_events.cancel_requested(by=by)
            else:
                changes = {
                    "status": RunStatus.CANCELLED,
                    "stop_reason": StopReason.CANCELLED,
                    "error": "cancelled by an admin",
                    "cancel_requested_at": now,
                    "completed_at": now,
                    "lease_owner": None,
                    "lease_expires_at": None,
                }
                conn.execute(
                    approvals.update()
                    .where(approvals.c.run_id == key, approvals.c.status == ApprovalStatus.PENDING)
                    .values(status=ApprovalStatus.CANCELLED, decided_at=now, decided_by=by)
                )
                event = ledger_events.run_cancelled(
                    by=by, stop_reason=StopReason.CANCELLED, error="cancelled by an admin"
                )
            row, _ = self._write_run(
                driver_cursor(conn), key, set_values=changes, new_events=[event]
            )
        assert row is not None
        return row

    def previous_run(self, run: Run) -> Run | None:
        """The objective's run before this one (memory across runs, as in the seed)."""
        with self._hot_reads() as cursor:
            return self._hot.previous_run(cursor, run)

    def run_memory(self, run: Run) -> tuple[Objective, Run | None]:
        """What a run starts from: its objective, and the objective's run before it (whose
        summary is the agent's memory), read as plain SQL: a worker does this at every run
        start."""
        hot = self._hot
        with self._hot_reads() as cursor:
            objective = hot.objective(cursor, run.objective_id)
            previous = hot.previous_run(cursor, run)
        if objective is None:
            raise NotFound(f"no objective has id {run.objective_id}")
        return objective, previous
