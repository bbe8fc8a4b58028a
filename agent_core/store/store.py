"""The one place the runtime reads and writes its database.

Every public method is one transaction. Writes that belong together (a step, its tool call,
its events and the run's counters) are written by one method so that a crash leaves all of
them or none. Ledger events are appended by `_write_run`, which also moves the run's ledger
head, so nothing writes an event without extending the hash chain.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Engine, Row, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from agent_core import events as ledger_events
from agent_core.errors import Conflict, LeaseLost, NotFound, StoreUnavailable
from agent_core.models import (
    ACTIVE_RUN_STATUSES,
    Approval,
    ApprovalStatus,
    Event,
    LedgerBreak,
    LedgerReport,
    NewApproval,
    NewEvent,
    NewStep,
    NewToolCall,
    Notification,
    NotificationKind,
    NotificationStatus,
    Objective,
    ObjectiveSpec,
    Run,
    RunChanges,
    RunDetail,
    RunStatus,
    RunTrigger,
    Step,
    StepOutcome,
    StepStatus,
    StopReason,
    ToolCall,
    ToolCallStatus,
    WorkerInfo,
)
from agent_core.store import migrations
from agent_core.store.engine import WRITE, create_engine, normalize_database_url
from agent_core.store.hotpath import HotPath
from agent_core.store.ledger import (
    GENESIS_HASH,
    ChainAnchor,
    ChainLink,
    event_hash,
    to_json_value,
    tool_args_hash,
    verify_chain,
)
from agent_core.store.schema import (
    approvals,
    events,
    ledger_checkpoints,
    notifications,
    objectives,
    runs,
    steps,
    tool_calls,
    workers,
)

Clock = Callable[[], datetime]

# Set for the duration of a prune transaction; the PostgreSQL ledger trigger lets only such a
# transaction delete events (see the initial migration).
PRUNE_SETTING = "app_agent.prune"


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class StepStarted:
    step: Step
    tool_call: ToolCall | None
    approval: Approval | None
    run: Run


class Store:
    """Queries the runtime and the dashboard need, on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, *, clock: Clock = utc_now) -> None:
        self.engine = engine
        self._clock = clock
        self._hot = HotPath(engine.dialect.name)
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def open(cls, database_url: str, *, clock: Clock = utc_now, check_schema: bool = True) -> Store:
        """Connect to `database_url`; unless told otherwise, insist the schema is current."""
        url = make_url(normalize_database_url(database_url))
        if check_schema and url.get_backend_name() == "sqlite" and not _sqlite_file_exists(url):
            raise StoreUnavailable(
                f"there is no database file at {url.database}: "
                "run `python -m agent_core db upgrade` first"
            )
        store = cls(create_engine(database_url), clock=clock)
        if check_schema:
            try:
                store.check_schema()
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def now(self) -> datetime:
        return self._clock()

    # --- schema ------------------------------------------------------------------------------

    def upgrade(self) -> str:
        """Create or migrate the schema to the newest revision; returns that revision."""
        with self._transaction(write=True) as conn:
            return migrations.upgrade(conn)

    def schema_revision(self) -> str | None:
        with self._transaction(write=False) as conn:
            return migrations.current_revision(conn)

    def check_schema(self) -> None:
        current = self.schema_revision()
        head = migrations.head_revision()
        if current == head:
            return
        if current is None:
            raise StoreUnavailable(
                "the database has no agent runtime schema yet: "
                "run `python -m agent_core db upgrade` first"
            )
        if migrations.is_known_revision(current):
            raise StoreUnavailable(
                f"the database schema is at revision {current}, older than this version "
                f"({head}): run `python -m agent_core db upgrade`"
            )
        raise StoreUnavailable(
            f"the database schema is at revision {current}, which this version of agent "
            "runtime does not know: upgrade agent runtime"
        )

    # --- objectives --------------------------------------------------------------------------

    def create_objective(self, spec: ObjectiveSpec) -> Objective:
        now = self.now()
        values = {
            "id": new_id(),
            **_objective_values(spec),
            "last_run_number": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self._transaction(write=True) as conn:
            row = conn.execute(objectives.insert().values(values).returning(objectives)).one()
        return _objective(row)

    def get_objective(self, objective_id: str) -> Objective:
        key = _parse_id(objective_id, "objective")
        with self._transaction(write=False) as conn:
            row = conn.execute(objectives.select().where(objectives.c.id == key)).one_or_none()
        if row is None:
            raise NotFound(f"no objective has id {objective_id}")
        return _objective(row)

    def update_objective(self, objective_id: str, spec: ObjectiveSpec) -> Objective:
        """Replace the objective's editable fields; schedules take effect without a restart
        because workers read them on every tick."""
        key = _parse_id(objective_id, "objective")
        with self._transaction(write=True) as conn:
            row = conn.execute(
                objectives.update()
                .where(objectives.c.id == key)
                .values(**_objective_values(spec), updated_at=self.now())
                .returning(objectives)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no objective has id {objective_id}")
        return _objective(row)

    def list_objectives(self) -> list[Objective]:
        query = objectives.select().order_by(objectives.c.created_at, objectives.c.id)
        with self._transaction(write=False) as conn:
            return [_objective(row) for row in conn.execute(query)]

    # --- runs --------------------------------------------------------------------------------

    def create_run(self, objective_id: str, *, trigger: RunTrigger = RunTrigger.MANUAL) -> Run:
        """Queue a run. Its number comes from one atomic UPDATE ... RETURNING on the objective,
        so two runs started at the same instant never share a number."""
        key = _parse_id(objective_id, "objective")
        with self._transaction(write=True) as conn:
            return self._insert_run(conn, key, trigger=trigger)

    def schedule_run(self, objective_id: str, slot: datetime) -> Run | None:
        """The run of a cron slot: queued, or recorded as skipped when the objective's
        previous run is still active. None when the slot already has its run (another worker
        created it: the unique key on objective and slot makes that exactly one)."""
        key = _parse_id(objective_id, "objective")
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
        key = _parse_id(objective_id, "objective")
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
        row, _ = self._write_run(_cursor(conn), run_id, new_events=new_events)
        assert row is not None
        return row

    def get_run(self, run_id: str) -> Run:
        key = _parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            return _run(self._run_row(conn, key, run_id))

    def list_runs(
        self,
        *,
        objective_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[Run]:
        query = runs.select().order_by(runs.c.created_at.desc(), runs.c.run_number.desc())
        if objective_id is not None:
            query = query.where(runs.c.objective_id == _parse_id(objective_id, "objective"))
        if status is not None:
            query = query.where(runs.c.status == status)
        with self._transaction(write=False) as conn:
            return [_run(row) for row in conn.execute(query.limit(limit))]

    def run_detail(self, run_id: str) -> RunDetail:
        key = _parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            run = _run(self._run_row(conn, key, run_id))
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
                steps=[_step(row) for row in step_rows],
                tool_calls=[_tool_call(row) for row in call_rows],
                events=[_event(row) for row in event_rows],
                approvals=[_approval(row) for row in approval_rows],
            )

    # --- run lifecycle -----------------------------------------------------------------------

    def claim_run(self, run_id: str, *, owner: str, lease_s: float) -> Run | None:
        """Take a queued run, or a running one whose lease lapsed (its worker died), for
        `owner`. Returns None when the run is not claimable (someone else holds it, it is
        paused or it has ended)."""
        key = _parse_id(run_id, "run")
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
            return self._claim(_cursor(conn), key, owner=owner, lease_s=lease_s, event=event)

    def update_run(
        self, run_id: str, changes: RunChanges, new_events: Sequence[NewEvent] = ()
    ) -> Run:
        """Change the run (end it, count a repair attempt's tokens...) and log why."""
        key = _parse_id(run_id, "run")
        with self._hot_transaction() as cursor:
            row, _ = self._write_run(cursor, key, changes=changes, new_events=new_events)
        assert row is not None
        return row

    def request_cancel(self, run_id: str, *, by: str = "admin") -> Run:
        """Cancel at once a run nobody is executing; ask a running one to stop before its
        next step."""
        key = _parse_id(run_id, "run")
        now = self.now()
        with self._transaction(write=True) as conn:
            current = _run(self._run_row(conn, key, run_id))
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
            row, _ = self._write_run(_cursor(conn), key, set_values=changes, new_events=[event])
        assert row is not None
        return row

    def previous_run(self, run: Run) -> Run | None:
        """The objective's run before this one (memory across runs, as in the seed)."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                runs.select()
                .where(
                    runs.c.objective_id == run.objective_id,
                    runs.c.run_number < run.run_number,
                    runs.c.status != RunStatus.SKIPPED,
                )
                .order_by(runs.c.run_number.desc())
                .limit(1)
            ).one_or_none()
        return _run(row) if row is not None else None

    def list_steps(self, run_id: str) -> list[Step]:
        key = _parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                steps.select().where(steps.c.run_id == key).order_by(steps.c.step_number)
            )
            return [_step(row) for row in rows]

    def list_tool_calls(self, run_id: str) -> list[ToolCall]:
        key = _parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                tool_calls.select()
                .where(tool_calls.c.run_id == key)
                .order_by(tool_calls.c.created_at, tool_calls.c.id)
            )
            return [_tool_call(row) for row in rows]

    # --- steps -------------------------------------------------------------------------------

    def start_step(
        self,
        run_id: str,
        step: NewStep,
        *,
        tool_call: NewToolCall | None = None,
        outcome: StepOutcome | None = None,
        approval: NewApproval | None = None,
        run: RunChanges | None = None,
        new_events: Sequence[NewEvent] = (),
    ) -> StepStarted:
        """Record a step, its tool call, its approval request, its events, the run's counters
        and any change to the run, all in one transaction.

        Without `outcome` the step is `executing` and its tool call `started`: the side effect
        is about to happen and `finish_step` records how it went. With `outcome` the step is
        written already finished (a read-only call already made, a denial, the final answer).
        """
        key = _parse_id(run_id, "run")
        now = self.now()
        counters = {
            "steps_count": 1,
            "tool_calls_count": 1 if tool_call else 0,
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
        }
        with self._hot_transaction() as cursor:
            run_row, _ = self._write_run(
                cursor, key, changes=run, add=counters, new_events=new_events
            )
            step_id = new_id()
            step_values = {
                "id": step_id,
                "run_id": key,
                "step_number": run_row.steps_count,  # type: ignore[union-attr]
                "thought": step.thought,
                "tool": step.tool,
                "args": to_json_value(step.args),
                "raw_output": step.raw_output,
                "status": outcome.step_status if outcome else StepStatus.EXECUTING,
                "result": to_json_value(outcome.result) if outcome else None,
                "model": step.model,
                "prompt_tokens": step.prompt_tokens,
                "completion_tokens": step.completion_tokens,
                "latency_ms": step.latency_ms,
                "created_at": now,
                "completed_at": now if outcome else None,
            }
            self._hot.insert(cursor, steps, [step_values])
            call_values: dict[str, Any] | None = None
            if tool_call is not None:
                args = to_json_value(tool_call.args)
                call_values = {
                    "id": new_id(),
                    "run_id": key,
                    "step_id": step_id,
                    "tool_name": tool_call.tool_name,
                    "args": args,
                    "args_hash": tool_args_hash(tool_call.tool_name, args),
                    "risk_level": tool_call.risk_level,
                    "status": (outcome.tool_call_status if outcome else None) or tool_call.status,
                    "result": to_json_value(outcome.result) if outcome else None,
                    "error": outcome.tool_error if outcome else None,
                    "duration_ms": outcome.duration_ms if outcome else None,
                    "attempts": outcome.attempts if outcome else 0,
                    "created_at": now,
                    "completed_at": now if outcome and outcome.tool_call_status else None,
                }
                self._hot.insert(cursor, tool_calls, [call_values])
            approval_values: dict[str, Any] | None = None
            if approval is not None:
                if call_values is None:
                    raise ValueError("an approval needs the tool call it approves")
                approval_values = {
                    "id": approval.id,
                    "run_id": key,
                    "step_id": step_id,
                    "tool_call_id": call_values["id"],
                    "tool_name": approval.tool_name,
                    "args": call_values["args"],
                    "args_hash": call_values["args_hash"],
                    "risk_reason": approval.risk_reason,
                    "status": ApprovalStatus.PENDING,
                    "expires_at": approval.expires_at,
                    "decided_by": None,
                    "decided_at": None,
                    "decision_reason": None,
                    "created_at": now,
                }
                self._hot.insert(cursor, approvals, [approval_values])
        return StepStarted(
            step=Step.model_construct(**step_values),
            tool_call=ToolCall.model_construct(**call_values) if call_values else None,
            approval=Approval.model_construct(**approval_values) if approval_values else None,
            run=run_row,  # type: ignore[arg-type]
        )

    def finish_step(
        self,
        run_id: str,
        step_id: str,
        outcome: StepOutcome,
        *,
        tool_call_id: str | None = None,
        run: RunChanges | None = None,
        new_events: Sequence[NewEvent] = (),
    ) -> Run:
        """Record how a step whose side effect was in flight ended, with its events."""
        run_key = _parse_id(run_id, "run")
        now = self.now()
        stored_result = to_json_value(outcome.result)
        step_key = _parse_id(step_id, "step")
        with self._hot_transaction() as cursor:
            run_row, _ = self._write_run(cursor, run_key, changes=run, new_events=new_events)
            self._hot.update_by_id(
                cursor,
                steps,
                step_key,
                {"status": outcome.step_status, "result": stored_result, "completed_at": now},
            )
            if tool_call_id is not None:
                self._hot.update_by_id(
                    cursor,
                    tool_calls,
                    _parse_id(tool_call_id, "tool call"),
                    {
                        "status": outcome.tool_call_status,
                        "result": stored_result,
                        "error": outcome.tool_error,
                        "duration_ms": outcome.duration_ms,
                        "attempts": outcome.attempts,
                        "completed_at": now,
                    },
                )
        assert run_row is not None
        return run_row

    # --- workers -----------------------------------------------------------------------------

    def claim_next(self, *, owner: str, limit: int, lease_s: float) -> list[Run]:
        """Claim up to `limit` queued runs, oldest first. On PostgreSQL the rows are picked
        with FOR UPDATE SKIP LOCKED, so several workers never claim the same run and never
        wait for each other; on SQLite the write lock serialises claims."""
        if limit < 1:
            return []
        pick = (
            sa.select(runs.c.id)
            .where(runs.c.status == RunStatus.QUEUED)
            .order_by(runs.c.created_at, runs.c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        claimed = []
        with self._transaction(write=True) as conn:
            cursor = _cursor(conn)
            for run_key in conn.execute(pick).scalars().all():
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
        keys = [_parse_id(run_id, "run") for run_id in run_ids]
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
        key = _parse_id(run_id, "run")
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
                self._write_run(_cursor(conn), row.id, set_values=values, new_events=[event])
            (failed if give_up else requeued).append(row.id)
        return requeued, failed

    def record_worker(
        self,
        *,
        worker_id: str,
        hostname: str,
        pid: int,
        concurrency: int,
        running: list[str],
        stopped: bool = False,
    ) -> None:
        """The worker's heartbeat row, so the dashboard and `worker status` see it alive."""
        now = self.now()
        values = {
            "hostname": hostname,
            "pid": pid,
            "concurrency": concurrency,
            "heartbeat_at": now,
            "stopped_at": now if stopped else None,
            "running": running,
        }
        insert = _upsert_builder(self.dialect)(workers).values(
            id=worker_id, started_at=now, **values
        )
        with self._transaction(write=True) as conn:
            conn.execute(insert.on_conflict_do_update(index_elements=[workers.c.id], set_=values))

    def list_workers(self, *, alive_within: timedelta | None = None) -> list[WorkerInfo]:
        query = workers.select().order_by(workers.c.heartbeat_at.desc())
        if alive_within is not None:
            query = query.where(
                workers.c.stopped_at.is_(None),
                workers.c.heartbeat_at >= self.now() - alive_within,
            )
        with self._transaction(write=False) as conn:
            return [_record(WorkerInfo, row) for row in conn.execute(query)]

    # --- approvals ---------------------------------------------------------------------------

    def get_approval(self, approval_id: str) -> Approval:
        key = _parse_id(approval_id, "approval")
        with self._transaction(write=False) as conn:
            row = conn.execute(approvals.select().where(approvals.c.id == key)).one_or_none()
        if row is None:
            raise NotFound(f"no approval has id {approval_id}")
        return _approval(row)

    def list_approvals(
        self, *, status: ApprovalStatus | None = None, limit: int = 100
    ) -> list[Approval]:
        query = approvals.select().order_by(approvals.c.created_at.desc(), approvals.c.id)
        if status is not None:
            query = query.where(approvals.c.status == status)
        with self._transaction(write=False) as conn:
            return [_approval(row) for row in conn.execute(query.limit(limit))]

    def decide_approval(
        self, approval_id: str, *, approve: bool, by: str, reason: str | None = None
    ) -> Approval:
        """Record an admin's decision and put the run back in the queue, at once. Only a
        pending, unexpired approval of a paused run can be decided, and only once: of two
        admins clicking together, the second is told who decided first."""
        key = _parse_id(approval_id, "approval")
        now = self.now()
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        with self._transaction(write=True) as conn:
            # Locked (PostgreSQL; SQLite's write lock already serialises): a second admin
            # waits here and then reads the first one's decision.
            current = conn.execute(
                approvals.select().where(approvals.c.id == key).with_for_update()
            ).one_or_none()
            if current is None:
                raise NotFound(f"no approval has id {approval_id}")
            run = _run(self._run_row(conn, current.run_id, current.run_id))
            refusal = _why_undecidable(_approval(current), run, now)
            if refusal:
                raise Conflict(refusal)
            decided = conn.execute(
                approvals.update()
                .where(
                    approvals.c.id == key,
                    approvals.c.status == ApprovalStatus.PENDING,
                    approvals.c.expires_at > now,
                )
                .values(status=status, decided_by=by, decided_at=now, decision_reason=reason)
                .returning(approvals)
            ).one_or_none()
            if decided is None:  # decided meanwhile by someone else
                latest = conn.execute(approvals.select().where(approvals.c.id == key)).one()
                raise Conflict(_why_undecidable(_approval(latest), run, now) or "try again")
            self._write_run(
                _cursor(conn),
                current.run_id,
                set_values={"status": RunStatus.QUEUED},
                new_events=[
                    ledger_events.approval_decided(
                        approval_id=key,
                        decision=status,
                        by=by,
                        reason=reason,
                        tool=current.tool_name,
                        args_hash=current.args_hash,
                    )
                ],
            )
        return _approval(decided)

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
                self._close_unapproved_step(
                    conn,
                    _approval(row),
                    ToolCallStatus.EXPIRED,
                    "not executed: the approval expired without a decision",
                )
                error = f"the approval for {row.tool_name} expired without a decision"
                self._write_run(
                    _cursor(conn),
                    row.run_id,
                    set_values={
                        "status": RunStatus.FAILED,
                        "stop_reason": StopReason.APPROVAL_EXPIRED,
                        "error": error,
                        "completed_at": now,
                        "lease_owner": None,
                        "lease_expires_at": None,
                    },
                    new_events=[
                        ledger_events.approval_expired(
                            approval_id=key, tool=row.tool_name, expired_at=row.expires_at
                        ),
                        ledger_events.run_failed(
                            stop_reason=StopReason.APPROVAL_EXPIRED, error=error
                        ),
                    ],
                )
                expired.append(_approval(row))
        return expired

    def _close_unapproved_step(
        self, conn: sa.Connection, approval: Approval, call_status: ToolCallStatus, error: str
    ) -> None:
        conn.execute(
            tool_calls.update()
            .where(tool_calls.c.id == approval.tool_call_id)
            .values(status=call_status, error=error, completed_at=self.now())
        )
        conn.execute(
            steps.update()
            .where(steps.c.id == approval.step_id)
            .values(status=StepStatus.FAILED, result={"error": error}, completed_at=self.now())
        )

    def start_approved_call(self, approval: Approval, run: RunChanges) -> bool:
        """Move an approved call from awaiting approval to started, once: False when it was
        already started (a second resume), so that it is never executed twice."""
        with self._transaction(write=True) as conn:
            moved = conn.execute(
                tool_calls.update()
                .where(
                    tool_calls.c.id == approval.tool_call_id,
                    tool_calls.c.status == ToolCallStatus.AWAITING_APPROVAL,
                )
                .values(status=ToolCallStatus.STARTED)
            ).rowcount
            if not moved:
                return False
            conn.execute(
                steps.update()
                .where(steps.c.id == approval.step_id)
                .values(status=StepStatus.EXECUTING)
            )
            self._write_run(
                _cursor(conn),
                approval.run_id,
                changes=run,
                new_events=[
                    ledger_events.approved_call_started(
                        approval_id=approval.id,
                        tool=approval.tool_name,
                        args_hash=approval.args_hash,
                    )
                ],
            )
        return True

    def close_unapproved_call(
        self,
        approval: Approval,
        call_status: ToolCallStatus,
        error: str,
        run: RunChanges,
        new_events: Sequence[NewEvent],
    ) -> Run:
        """A rejected (or invalid) approval's step ends without its call being made; `error`
        is what the agent observes."""
        with self._transaction(write=True) as conn:
            self._close_unapproved_step(conn, approval, call_status, error)
            row, _ = self._write_run(
                _cursor(conn), approval.run_id, changes=run, new_events=new_events
            )
        assert row is not None
        return row

    def step_awaiting_decision(self, run_id: str) -> tuple[Step, ToolCall, Approval] | None:
        """The run's step paused for approval, with its call and approval, if any."""
        key = _parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            step_row = conn.execute(
                steps.select().where(
                    steps.c.run_id == key, steps.c.status == StepStatus.AWAITING_APPROVAL
                )
            ).first()
            if step_row is None:
                return None
            call_row = conn.execute(
                tool_calls.select().where(tool_calls.c.step_id == step_row.id)
            ).one()
            approval_row = conn.execute(
                approvals.select().where(approvals.c.step_id == step_row.id)
            ).one()
        return _step(step_row), _tool_call(call_row), _approval(approval_row)

    # --- notifications -----------------------------------------------------------------------

    def add_notifications(
        self, approval: Approval, kind: NotificationKind, recipients: Mapping[str, str | None]
    ) -> list[Notification]:
        """One pending notification per channel (skipped when it already exists)."""
        now = self.now()
        created = []
        with self._transaction(write=True) as conn:
            for channel, recipient in recipients.items():
                values = {
                    "id": new_id(),
                    "approval_id": approval.id,
                    "run_id": approval.run_id,
                    "channel": channel,
                    "kind": kind,
                    "recipient": recipient,
                    "status": NotificationStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                insert = _upsert_builder(self.dialect)(notifications).values(values)
                row = conn.execute(
                    insert.on_conflict_do_nothing().returning(notifications)
                ).one_or_none()
                if row is not None:
                    created.append(_notification(row))
        return created

    def list_notifications(self, approval_id: str) -> list[Notification]:
        key = _parse_id(approval_id, "approval")
        query = (
            notifications.select()
            .where(notifications.c.approval_id == key)
            .order_by(notifications.c.created_at, notifications.c.channel)
        )
        with self._transaction(write=False) as conn:
            return [_notification(row) for row in conn.execute(query)]

    def claim_notification(self, notification_id: str, *, hold: timedelta) -> bool:
        """Take a due notification for one sending attempt: it is not due again for `hold`,
        so a maintenance pass meanwhile does not send it a second time."""
        now = self.now()
        with self._transaction(write=True) as conn:
            claimed = conn.execute(
                notifications.update()
                .where(
                    notifications.c.id == notification_id,
                    notifications.c.status.in_(
                        [NotificationStatus.PENDING, NotificationStatus.FAILED]
                    ),
                    notifications.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + hold)
            ).rowcount
        return bool(claimed)

    def due_notifications(self, *, limit: int = 100) -> list[Notification]:
        """Notifications to (re)send now: pending, or failed and due for another attempt."""
        now = self.now()
        query = (
            notifications.select()
            .where(
                notifications.c.status.in_([NotificationStatus.PENDING, NotificationStatus.FAILED]),
                notifications.c.next_attempt_at <= now,
            )
            .order_by(notifications.c.next_attempt_at)
            .limit(limit)
        )
        with self._transaction(write=False) as conn:
            return [_notification(row) for row in conn.execute(query)]

    def record_notification(
        self,
        notification: Notification,
        *,
        status: NotificationStatus,
        error: str | None,
        next_attempt_at: datetime | None,
        event: NewEvent,
    ) -> None:
        """An attempt's outcome on the notification, and its event in the run's ledger."""
        now = self.now()
        with self._transaction(write=True) as conn:
            conn.execute(
                notifications.update()
                .where(notifications.c.id == notification.id)
                .values(
                    status=status,
                    attempts=notifications.c.attempts + 1,
                    last_error=error,
                    next_attempt_at=next_attempt_at,
                    sent_at=now if status is NotificationStatus.SENT else None,
                )
            )
            self._write_run(_cursor(conn), notification.run_id, new_events=[event])

    def approvals_to_remind(self, *, within: timedelta) -> list[Approval]:
        """Pending approvals expiring within `within` that have had no reminder yet."""
        now = self.now()
        reminded = sa.select(notifications.c.approval_id).where(
            notifications.c.kind == NotificationKind.REMINDER
        )
        query = approvals.select().where(
            approvals.c.status == ApprovalStatus.PENDING,
            approvals.c.expires_at > now,
            approvals.c.expires_at <= now + within,
            approvals.c.id.not_in(reminded),
        )
        with self._transaction(write=False) as conn:
            return [_approval(row) for row in conn.execute(query)]

    # --- ledger ------------------------------------------------------------------------------

    def append_events(self, run_id: str, new_events: Sequence[NewEvent]) -> list[Event]:
        key = _parse_id(run_id, "run")
        with self._hot_transaction() as cursor:
            _, written = self._write_run(cursor, key, new_events=new_events)
        return written

    def list_events(self, run_id: str) -> list[Event]:
        key = _parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                events.select().where(events.c.run_id == key).order_by(events.c.seq)
            )
            return [_event(row) for row in rows]

    def verify_ledger(self, run_id: str | None = None) -> LedgerReport:
        """Recompute every run's hash chain (or one run's) and name the first broken event."""
        run_filter = runs.c.id == _parse_id(run_id, "run") if run_id else sa.true()
        event_filter = events.c.run_id == _parse_id(run_id, "run") if run_id else sa.true()
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
        insert = _upsert_builder(self.dialect)(ledger_checkpoints).values(
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

    # --- internals ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sa.Connection]:
        """One transaction; database errors that mean "unreachable" become one sentence."""
        try:
            with self._writer(write), self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE: True})
                with conn.begin():
                    yield conn
        except (OperationalError, ProgrammingError) as exc:
            raise _unavailable(exc, self.engine) from exc
        except self.engine.dialect.loaded_dbapi.OperationalError as exc:  # the hot path's
            raise _unavailable(exc, self.engine) from exc

    @contextmanager
    def _hot_transaction(self) -> Iterator[Any]:
        """A write transaction on a pooled DBAPI connection, for the per-step writes: the
        same transaction semantics as `_transaction`, without its per-statement cost."""
        dbapi = self.engine.dialect.loaded_dbapi
        with self._writer(True):
            try:
                raw = self.engine.raw_connection()
            except OperationalError as exc:
                raise _unavailable(exc, self.engine) from exc
            try:
                cursor = raw.cursor()
                if self.dialect == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")
                try:
                    yield cursor
                except BaseException:
                    raw.rollback()
                    raise
                raw.commit()
            except dbapi.OperationalError as exc:
                raise _unavailable(exc, self.engine) from exc
            finally:
                raw.close()

    def _writer(self, write: bool) -> AbstractContextManager[object]:
        """SQLite allows one writer at a time, and a writer that finds the lock taken sleeps
        in growing steps (milliseconds) before trying again. Threads of this process
        therefore queue for the write lock here, on a Python lock, which is handed over at
        once; other processes still meet SQLite's busy timeout."""
        return self._write_lock if write and self._write_lock is not None else nullcontext()

    def _run_row(self, conn: sa.Connection, key: str, shown_id: str) -> Row[Any]:
        row = conn.execute(runs.select().where(runs.c.id == key)).one_or_none()
        if row is None:
            raise NotFound(f"no run has id {shown_id}")
        return row

    def _run_changes(self, changes: RunChanges) -> tuple[dict[str, Any], dict[str, int]]:
        """The column values (set, and added to) that a RunChanges stands for."""
        values: dict[str, Any] = {}
        for name in ("status", "stop_reason", "summary", "error", "previous_run_id", "active_ms"):
            value = getattr(changes, name)
            if value is not None:
                values[name] = value
        if changes.lease_expires_at is not None:
            values["lease_expires_at"] = changes.lease_expires_at
        ending = changes.status is not None and changes.status.is_final
        if ending:
            values["completed_at"] = self.now()
        if changes.release_lease or ending:
            values["lease_owner"] = None
            values["lease_expires_at"] = None
        added = {
            name: amount
            for name, amount in (
                ("prompt_tokens", changes.add_prompt_tokens),
                ("completion_tokens", changes.add_completion_tokens),
            )
            if amount
        }
        return values, added

    def _write_run(
        self,
        cursor: Any,
        run_key: str,
        *,
        changes: RunChanges | None = None,
        set_values: Mapping[str, Any] | None = None,
        add: Mapping[str, int] | None = None,
        first_values: Mapping[str, Any] | None = None,
        new_events: Sequence[NewEvent] = (),
        only_if_claimable: bool = False,
    ) -> tuple[Run | None, list[Event]]:
        """Change the run and append `new_events` to its ledger, chained to the event before
        them (found by the same statement). Returns the updated run and the events.

        The run changes come from `changes` (whose `owner` fences the write: LeaseLost when
        that worker no longer holds the run) and from `set_values` / `add` (columns set, and
        counters increased). With `only_if_claimable` the write happens only if the run is
        queued or its lease lapsed, and the run is None otherwise. This is the hot path of
        every step: see hotpath.py.
        """
        values: dict[str, Any] = dict(set_values or {})
        added: dict[str, int] = dict(add or {})
        owner = None
        if changes is not None:
            more_values, more_added = self._run_changes(changes)
            values.update(more_values)
            for name, amount in more_added.items():
                added[name] = added.get(name, 0) + amount
            owner = changes.owner
        now = self.now()
        updated = self._hot.update_run(
            cursor,
            run_key=run_key,
            set_values=values,
            added={name: amount for name, amount in added.items() if amount},
            first_values=first_values,
            new_events=len(new_events),
            now=now,
            owner=owner,
            only_if_claimable=only_if_claimable,
        )
        if updated is None:
            if not self._hot.run_exists(cursor, run_key):
                raise NotFound(f"no run has id {run_key}")
            if only_if_claimable:
                return None, []
            raise LeaseLost(f"run {run_key} is no longer held by {owner}")
        row, previous_hash = updated
        run = Run.model_validate(row)
        if not new_events:
            return run, []
        prev_hash = previous_hash or GENESIS_HASH
        written: list[Event] = []
        first_seq = run.event_seq - len(new_events) + 1
        for seq, new in enumerate(new_events, start=first_seq):
            data = to_json_value(new.data)
            digest = event_hash(
                run_id=run_key,
                seq=seq,
                event_type=new.event_type,
                data=data,
                created_at=now,
                prev_hash=prev_hash,
            )
            written.append(
                Event.model_construct(
                    run_id=run_key,
                    seq=seq,
                    event_type=new.event_type,
                    data=data,
                    created_at=now,
                    prev_hash=prev_hash,
                    hash=digest,
                )
            )
            prev_hash = digest
        self._hot.insert(cursor, events, [event.__dict__ for event in written])
        return run, written


def _cursor(conn: sa.Connection) -> Any:
    """A cursor of the DBAPI connection under `conn`, inside its transaction."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def _objective_values(spec: ObjectiveSpec) -> dict[str, Any]:
    return {
        "title": spec.title,
        "description": spec.description,
        "tools_allowed": list(spec.tools_allowed),
        "budget": spec.budget.as_document(),
        "risk_level": spec.risk_level,
        "schedule": spec.schedule,
        "timezone": spec.timezone,
        "enabled": spec.enabled,
    }


def _parse_id(value: str, kind: str) -> str:
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise NotFound(f"{value!r} is not a valid {kind} id") from None


def _sqlite_file_exists(url: URL) -> bool:
    database = url.database or ""
    return database == ":memory:" or database.startswith("file:") or Path(database).exists()


def _upsert_builder(dialect: str) -> Any:
    return pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert


def _unavailable(exc: Exception, engine: Engine) -> StoreUnavailable:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(original) if original is not None else str(exc)
    reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    lowered = reason.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return StoreUnavailable(
            "the database has no agent runtime schema yet: "
            "run `python -m agent_core db upgrade` first"
        )
    where = engine.url.render_as_string(hide_password=True)
    return StoreUnavailable(f"cannot use the database at {where}: {reason}")


RecordT = TypeVar("RecordT", bound=BaseModel)


def _record(model: type[RecordT], row: Row[Any]) -> RecordT:
    return model.model_validate(dict(row._mapping))


def _objective(row: Row[Any]) -> Objective:
    return _record(Objective, row)


def _run(row: Row[Any]) -> Run:
    return _record(Run, row)


def _step(row: Row[Any]) -> Step:
    return _record(Step, row)


def _tool_call(row: Row[Any]) -> ToolCall:
    return _record(ToolCall, row)


def _event(row: Row[Any]) -> Event:
    return _record(Event, row)


def _approval(row: Row[Any]) -> Approval:
    return _record(Approval, row)


def _notification(row: Row[Any]) -> Notification:
    return _record(Notification, row)


def _why_undecidable(approval: Approval, run: Run, now: datetime) -> str | None:
    """Why this approval cannot be decided now, in one sentence; None when it can."""
    if approval.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
        when = approval.decided_at.strftime("%Y-%m-%d %H:%M UTC") if approval.decided_at else "?"
        return (
            f"approval {approval.id} was already {approval.status} "
            f"by {approval.decided_by} at {when}"
        )
    if approval.status is ApprovalStatus.EXPIRED or approval.expires_at <= now:
        return (
            f"approval {approval.id} expired at {approval.expires_at:%Y-%m-%d %H:%M UTC} "
            "and can no longer be decided"
        )
    if approval.status is ApprovalStatus.CANCELLED or run.status is RunStatus.CANCELLED:
        return f"approval {approval.id} belongs to run {run.id}, which was cancelled"
    if run.status is not RunStatus.PAUSED:
        return f"run {run.id} is {run.status}, not waiting for this approval"
    return None


def _chain_link(row: Row[Any]) -> ChainLink:
    return ChainLink(
        seq=row.seq,
        event_type=row.event_type,
        data=row.data,
        created_at=row.created_at,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
