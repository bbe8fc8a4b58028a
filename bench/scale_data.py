"""The database of bench/dashboard_scale.py: 100,000 runs over 90 days, built fast.

Rows are generated a few thousand runs at a time (realistic shapes: several objectives,
every status and stop reason, steps with usage, model and latency, tool calls, approvals in
every state with about 50 pending, ledger events with realistic payloads, one 500-step run)
and written by bulk inserts: executemany on SQLite, COPY on PostgreSQL. Insert only (the
ledger tables refuse UPDATE and DELETE on PostgreSQL). The events' hash chain is not valid:
no page verifies it.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from agent_core.store.schema import (
    approvals,
    events,
    notifications,
    objectives,
    runs,
    steps,
    tool_calls,
)

DAYS = 90
OBJECTIVES = 8
LONG_RUN_STEPS = 500
PENDING_APPROVALS = 50
CHUNK_RUNS = 5_000
MODELS = (("gpt-4o-mini", 6), ("claude-3-5-haiku-latest", 3), ("local-llama-3.1-8b", 1))
TOOLS = ("read_database", "http_get", "web_search", "send_email", "write_row", "delete_row")
RISKY = frozenset({"send_email", "write_row", "delete_row"})
ENDED_STATUSES = (("completed", 74), ("failed", 13), ("cancelled", 5), ("skipped", 8))
FAILURES = (
    "budget_steps",
    "budget_tool_calls",
    "budget_duration",
    "budget_tokens",
    "llm_error",
    "llm_timeout",
    "invalid_output",
    "approval_expired",
    "approval_invalid",
    "config_error",
    "worker_lost",
    "internal_error",
)
CALL_OUTCOMES = (("succeeded", 88), ("failed", 6), ("denied", 3), ("unknown", 1), ("started", 0))
DECISIONS = (("approved", 60), ("rejected", 20), ("expired", 12), ("cancelled", 8))
TABLE_ORDER = (runs, steps, tool_calls, approvals, notifications, events)


@dataclass
class Picks:
    """The rows the benchmark opens: an objective, a typical run, the long run, a pending
    approval; and each objective's last run number."""

    objective_id: str = ""
    run_id: str = ""
    long_run_id: str = ""
    approval_id: str = ""
    numbers: dict[str, int] = field(default_factory=dict)


@dataclass
class Batch:
    """Rows of some runs, per table, in insertion order (foreign keys first)."""

    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {table.name: [] for table in TABLE_ORDER}
    )

    def add(self, table: sa.Table, row: dict[str, Any]) -> None:
        self.rows[table.name].append(row)


@dataclass
class Counts:
    """Rows written per table, for the benchmark's heading."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, batch: Batch) -> None:
        for name, rows in batch.rows.items():
            self.rows[name] = self.rows.get(name, 0) + len(rows)


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in choices], [weight for _, weight in choices])[0]


def _new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class RunWriter:
    """Appends one run and everything it wrote (steps, calls, approvals, events) to a batch."""

    def __init__(self, rng: random.Random, now: datetime, batch: Batch) -> None:
        self.rng, self.now, self.batch = rng, now, batch
        self.run_id = self.prev_hash = self.last_pending = ""
        self.seq = 0
        self.clock = now

    def run(
        self,
        *,
        objective_id: str,
        number: int,
        created: datetime,
        status: str,
        steps_count: int,
        pending: bool = False,
    ) -> str:
        rng = self.rng
        run_id = _new_id(rng)
        self.seq = 0
        self.run_id = run_id
        self.clock = created
        trigger = "schedule" if rng.random() < 0.7 else "manual"
        self._event(
            "run_queued",
            objective_id=objective_id,
            run_number=number,
            trigger=trigger,
            slot=None,
        )
        stop_reason = {
            "completed": "done",
            "cancelled": "cancelled",
            "skipped": "previous_run_active",
            "failed": rng.choice(FAILURES),
        }.get(status)
        started = None
        if status not in ("queued", "skipped"):
            started = self._tick(200, 3_000)
            self._event("run_claimed", owner="worker-1", from_status="queued")
            budget = {"max_steps": 20, "max_tool_calls": 20, "max_tokens": 200_000}
            self._event(
                "run_started",
                objective_id=objective_id,
                attempt=1,
                owner="worker-1",
                resumed_at_step=0,
                budget=budget,
                previous_run_id=None,
            )
        totals = {"prompt": 0, "completion": 0, "calls": 0, "active": 0}
        for number_of_step in range(1, steps_count + 1):
            last = number_of_step == steps_count
            self._step(number_of_step, status=status, last=last, pending=pending, totals=totals)
        ended = status in ("completed", "failed", "cancelled", "skipped")
        if status == "completed":
            self._event("objective_completed", summary="Drafted a follow-up for 12 leads.")
        elif status == "failed":
            self._event("run_failed", stop_reason=stop_reason, error=f"stopped: {stop_reason}")
        elif status == "cancelled":
            self._event("run_cancelled", by="admin", stop_reason="cancelled", error=None)
        elif status == "skipped":
            self._event("run_skipped", objective_id=objective_id, run_number=number)
        completed = self.clock if ended else None
        self.batch.add(
            runs,
            {
                "id": run_id,
                "objective_id": objective_id,
                "run_number": number,
                "status": status,
                "stop_reason": stop_reason,
                "summary": "Drafted a follow-up for 12 leads." if status == "completed" else None,
                "error": f"stopped: {stop_reason}" if status == "failed" else None,
                "trigger": trigger,
                "previous_run_id": None,
                "steps_count": steps_count,
                "tool_calls_count": totals["calls"],
                "prompt_tokens": totals["prompt"],
                "completion_tokens": totals["completion"],
                "event_seq": self.seq,
                "created_at": created,
                "started_at": started,
                "completed_at": completed,
                "updated_at": self.clock,
                "lease_owner": "worker-1" if status == "running" else None,
                "lease_expires_at": self.now + timedelta(minutes=5)
                if status == "running"
                else None,
                "attempts": 0 if started is None else 1,
                "cancel_requested_at": None,
                "active_ms": totals["active"],
                "schedule_slot": None,
            },
        )
        return run_id

    def _tick(self, low: int, high: int) -> datetime:
        self.clock += timedelta(milliseconds=self.rng.randint(low, high))
        return self.clock

    def _event(self, event_type: str, **data: Any) -> None:
        """A ledger event with a realistic payload; its hash is not a valid chain link."""
        self.seq += 1
        digest = hashlib.sha256(f"{self.run_id}:{self.seq}".encode()).hexdigest()
        row = {
            "run_id": self.run_id,
            "seq": self.seq,
            "event_type": event_type,
            "data": data,
            "created_at": self.clock,
            "prev_hash": self.prev_hash if self.seq > 1 else "0" * 64,
            "hash": digest,
        }
        self.batch.add(events, row)
        self.prev_hash = digest

    def _step(
        self, number: int, *, status: str, last: bool, pending: bool, totals: dict[str, int]
    ) -> None:
        rng = self.rng
        model = _weighted(rng, MODELS)
        prompt, completion = rng.randint(600, 4_000), rng.randint(40, 600)
        latency = rng.randint(300, 6_000)
        llm = {
            "model": model,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "latency_ms": latency,
            "fallback_from": ["gpt-4o"] if rng.random() < 0.01 else None,
        }
        if rng.random() < 0.02:
            self._event(
                "step_error",
                attempt=1,
                error="the reply is not valid JSON",
                reply='{"tool": "read_database", "args": ',
                **{**llm, "completion_tokens": 20},
            )
            totals["prompt"] += prompt
        finish = last and status == "completed"
        tool = None if finish else rng.choice(TOOLS)
        if pending and last:  # the paused run waits on a risky call
            tool = rng.choice(sorted(RISKY))
        created = self._tick(latency, latency + 200)
        step_id = _new_id(rng)
        args = {"table": "app_leads", "where": {"status": "new"}, "limit": 20} if tool else None
        thought = (
            "All leads have a drafted follow-up: the objective is met."
            if finish
            else f"I need to use {tool} to look at the leads created last week."
        )
        step_status, call_status, approval_status = "completed", None, None
        if tool is not None:
            self._event("step_started", step_number=number, tool=tool, **llm)
            call_status = _weighted(rng, CALL_OUTCOMES)
            if tool in RISKY and ((pending and last) or rng.random() < 0.25):
                approval_status = "pending" if pending and last else _weighted(rng, DECISIONS)
                call_status = {
                    "pending": "awaiting_approval",
                    "approved": "succeeded",
                    "rejected": "rejected",
                    "expired": "expired",
                    "cancelled": "expired",
                }[approval_status]
            if call_status == "awaiting_approval":
                step_status = "awaiting_approval"
            elif call_status in ("failed", "denied", "unknown"):
                step_status = "failed" if call_status == "failed" else "completed"
        duration = rng.randint(20, 2_500) if call_status in ("succeeded", "failed") else None
        result = (
            {"rows": [{"id": 1, "email": "ada@example.com", "status": "new"}], "count": 1}
            if call_status == "succeeded"
            else None
        )
        completed_at = None if step_status == "awaiting_approval" else self._tick(20, 2_600)
        self.batch.add(
            steps,
            {
                "id": step_id,
                "run_id": self.run_id,
                "step_number": number,
                "thought": thought,
                "tool": tool,
                "args": args,
                "raw_output": json.dumps({"thought": thought, "tool": tool, "args": args}),
                "result": result,
                "status": step_status,
                "model": model,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "latency_ms": latency,
                "created_at": created,
                "completed_at": completed_at,
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )
        totals["prompt"] += prompt
        totals["completion"] += completion
        totals["active"] += latency + (duration or 0)
        if tool is not None:
            totals["calls"] += 1
            self._call(step_id, number, tool, args or {}, call_status, approval_status, duration)
        self._event(
            "step_completed",
            step_number=number,
            tool=tool,
            done=finish,
            success=call_status in (None, "succeeded"),
            error=None if call_status in (None, "succeeded") else f"the call {call_status}",
            duration_ms=duration,
            attempts=1 if tool else 0,
            approval_id=None,
            **llm,
        )

    def _call(
        self,
        step_id: str,
        number: int,
        tool: str,
        args: dict[str, Any],
        status: str | None,
        approval_status: str | None,
        duration: int | None,
    ) -> None:
        rng = self.rng
        call_id = _new_id(rng)
        args_hash = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()
        self.batch.add(
            tool_calls,
            {
                "id": call_id,
                "run_id": self.run_id,
                "step_id": step_id,
                "tool_name": tool,
                "args": args,
                "args_hash": args_hash,
                "risk_level": "high" if tool in RISKY else "low",
                "status": status,
                "result": {"count": 1} if status == "succeeded" else None,
                "error": None if status in ("succeeded", "awaiting_approval") else "it failed",
                "duration_ms": duration,
                "attempts": 1,
                "created_at": self.clock,
                "completed_at": self.clock if duration is not None else None,
            },
        )
        if status == "denied":
            self._event("tool_denied", step_number=number, tool=tool, reason="not allowed")
        if approval_status is None:
            return
        approval_id = _new_id(rng)
        self._event(
            "approval_requested",
            approval_id=approval_id,
            step_number=number,
            tool=tool,
            args=args,
            reason=f"{tool} changes data outside the agent",
            expires_at=(self.clock + timedelta(hours=24)).isoformat(),
        )
        decided = approval_status in ("approved", "rejected")
        asked_at = self.clock
        if decided:
            self._tick(30_000, 3_600_000)
            self._event(
                "approval_decided",
                approval_id=approval_id,
                decision=approval_status,
                by="ada",
                reason=None,
                tool=tool,
                args_hash=args_hash,
            )
        expires = (
            self.now + timedelta(hours=20)
            if approval_status == "pending"
            else asked_at + timedelta(hours=24)
        )
        self.batch.add(
            approvals,
            {
                "id": approval_id,
                "run_id": self.run_id,
                "step_id": step_id,
                "tool_call_id": call_id,
                "tool_name": tool,
                "args": args,
                "args_hash": args_hash,
                "risk_reason": f"{tool} changes data outside the agent",
                "status": approval_status,
                "expires_at": expires,
                "decided_by": "ada" if decided else None,
                "decided_at": self.clock if decided else None,
                "decision_reason": None,
                "created_at": asked_at,
                "original_args": {"limit": 50} if decided and rng.random() < 0.1 else None,
                "binding": None,
                "decision_signature": None,
            },
        )
        if approval_status == "pending":
            self.last_pending = approval_id
            for channel in ("email", "whatsapp"):
                self.batch.add(
                    notifications,
                    {
                        "id": _new_id(rng),
                        "approval_id": approval_id,
                        "run_id": self.run_id,
                        "channel": channel,
                        "kind": "approval_request",
                        "recipient": "ada@example.com" if channel == "email" else "+15550100",
                        "status": "sent",
                        "attempts": 1,
                        "last_error": None,
                        "next_attempt_at": None,
                        "sent_at": asked_at,
                        "created_at": asked_at,
                    },
                )


def objective_rows(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    titles = (
        "Follow up last week's leads",
        "Weekly sales digest",
        "Clean duplicate contacts",
        "Invoice reminders",
        "Support inbox triage",
        "Churn risk report",
        "Newsletter draft",
        "Data quality check",
    )
    return [
        {
            "id": _new_id(rng),
            "title": titles[index % len(titles)],
            "description": "Find what needs doing and do it, asking before anything risky.",
            "tools_allowed": list(TOOLS),
            "budget": {"max_steps": 20, "max_tool_calls": 20},
            "risk_level": "medium",
            "schedule": "0 * * * *",
            "timezone": "UTC",
            "enabled": True,
            "last_run_number": 0,
            "created_at": now - timedelta(days=DAYS + 1),
            "updated_at": now - timedelta(days=DAYS + 1),
        }
        for index in range(OBJECTIVES)
    ]


def batches(total_runs: int, now: datetime, picks: Picks, seed: int = 7) -> Iterator[Batch]:
    """The objectives first, then batches of CHUNK_RUNS runs oldest first; the newest runs
    include the active ones (queued, running, paused on a pending approval) and the long run."""
    rng = random.Random(seed)
    head = Batch(rows={objectives.name: objective_rows(rng, now)})
    objective_ids = [row["id"] for row in head.rows[objectives.name]]
    picks.objective_id = objective_ids[1]
    yield head
    numbers = picks.numbers = dict.fromkeys(objective_ids, 0)
    span_ms = DAYS * 86_400_000
    moments = sorted(rng.randrange(span_ms) for _ in range(total_runs))
    active_from = total_runs - 4 * PENDING_APPROVALS
    for start in range(0, total_runs, CHUNK_RUNS):
        batch = Batch()
        writer = RunWriter(rng, now, batch)
        for index in range(start, min(start + CHUNK_RUNS, total_runs)):
            objective_id = rng.choice(objective_ids)
            numbers[objective_id] += 1
            created = now - timedelta(milliseconds=span_ms - moments[index] + 3_600_000)
            status, pending = _weighted(rng, ENDED_STATUSES), False
            if index >= active_from:
                status = ("paused", "running", "queued", "completed")[index % 4]
                pending = status == "paused"
            count = 0 if status in ("queued", "skipped") else rng.randint(1, 6)
            if pending and count < 2:
                count = 2
            run_id = writer.run(
                objective_id=objective_id,
                number=numbers[objective_id],
                created=created,
                status=status,
                steps_count=count,
                pending=pending,
            )
            if status == "completed" and index == total_runs // 2:
                picks.run_id = run_id
            if pending:
                picks.approval_id = writer.last_pending
        if start + CHUNK_RUNS >= total_runs:
            numbers[objective_ids[0]] += 1
            picks.long_run_id = writer.run(
                objective_id=objective_ids[0],
                number=numbers[objective_ids[0]],
                created=now - timedelta(days=1),
                status="completed",
                steps_count=LONG_RUN_STEPS,
            )
            if not picks.run_id:
                picks.run_id = picks.long_run_id
        yield batch


def _plain(value: Any) -> Any:
    """A value as COPY's text format takes it: JSON documents as text."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def write(conn: sa.Connection, batch: Batch) -> None:
    """Bulk-insert a batch: COPY on PostgreSQL, executemany elsewhere."""
    tables = {table.name: table for table in (objectives, *TABLE_ORDER)}
    for name, rows in batch.rows.items():
        if not rows:
            continue
        table = tables[name]
        if conn.dialect.name != "postgresql":
            conn.execute(table.insert(), rows)
            continue
        columns = list(rows[0])
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_plain(row[column]) for column in columns])


def build(engine: sa.Engine, total_runs: int, now: datetime | None = None) -> tuple[Picks, Counts]:
    """Insert the whole database (the schema must be current); returns what to open."""
    now = now or datetime.now(UTC)
    picks, counts = Picks(), Counts()
    for batch in batches(total_runs, now, picks):
        with engine.begin() as conn:
            write(conn, batch)
        counts.add(batch)
    with engine.begin() as conn:
        for objective_id, number in picks.numbers.items():
            conn.execute(
                objectives.update()
                .where(objectives.c.id == objective_id)
                .values(last_run_number=number)
            )
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")  # what autovacuum does soon after bulk inserts
    return picks, counts
