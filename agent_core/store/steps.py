"""Steps: the writes of the agent loop, one transaction per step, and approved calls.

`start_step` and `finish_step` are the hot path: one `_hot_transaction` holds the run's
counters and ledger head, the step, its tool call and its approval request, so a crash
leaves all of them or none. A call waiting for approval is moved on from here at most
once: `start_approved_call` moves it to started only if it is still awaiting approval."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agent_core import events as ledger_events
from agent_core.errors import NotFound
from agent_core.models import (
    Approval,
    ApprovalStatus,
    NewApproval,
    NewEvent,
    NewStep,
    NewToolCall,
    Run,
    RunChanges,
    Step,
    StepOutcome,
    StepStatus,
    ToolCall,
    ToolCallStatus,
)
from agent_core.store.base import (
    Clock,
    StoreBase,
    as_approval,
    as_step,
    as_tool_call,
    driver_cursor,
    new_id,
    parse_id,
)
from agent_core.store.hotpath import (
    ChainedEvent,
    Head,
    HotPath,
    json_text,
    json_value,
    text_of,
)
from agent_core.store.ledger import (
    CALL_HASH,
    STEP_HASH,
    outcome_digests,
    step_hash,
    to_json_value,
    with_step_digests,
)
from agent_core.store.schema import (
    approvals,
    events,
    steps,
    tool_calls,
)
from agent_core.store.signing import LedgerKey


class StepStarted:
    """What `start_step` wrote: the run as it now is, and the step, its tool call and its
    approval as records, each built when first asked for (the loop reads the step and the
    run; the call and approval records are rarely needed)."""

    def __init__(
        self,
        run: Run,
        step_values: dict[str, Any],
        call_values: dict[str, Any] | None,
        approval_values: dict[str, Any] | None,
    ) -> None:
        self.run = run
        self._values = (step_values, call_values, approval_values)

    @functools.cached_property
    def step(self) -> Step:
        return Step.model_validate(self._values[0])

    @functools.cached_property
    def tool_call(self) -> ToolCall | None:
        values = self._values[1]
        return ToolCall.model_validate(values) if values is not None else None

    @functools.cached_property
    def approval(self) -> Approval | None:
        values = self._values[2]
        return Approval.model_validate(values) if values is not None else None


class _StepRows:
    """The rows of a step being written (its step, tool call and approval request), built
    once the step's number and its chained events are known, with each value converted
    once: the step's time, the run's id and the result's JSON are shared by the rows."""

    def __init__(
        self,
        hot: HotPath,
        run_key: str,
        step: NewStep,
        tool_call: NewToolCall | None,
        outcome: StepOutcome | None,
        approval: NewApproval | None,
        signing_key: LedgerKey | None,
        now: datetime,
    ) -> None:
        self._hot = hot
        self.run_key, self.now = run_key, now
        self._step, self._tool_call, self._outcome = step, tool_call, outcome
        self._approval, self._signing_key = approval, signing_key
        self._run_param = self._hot.codec.uuid(run_key)
        self._now_param = self._hot.time_param(now)
        self._stored_result = json_value(outcome.result) if outcome else None
        self._result_json = json_text(self._stored_result)
        self._values: tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]
        self._step_id = new_id()
        self._step_args = json_value(step.args)
        self._call_args = json_value(tool_call.args) if tool_call else None
        self._args_hash = hot.args_hash(tool_call.tool_name, self._call_args) if tool_call else None
        self.step_status = outcome.step_status if outcome else StepStatus.EXECUTING
        self.call_status = (
            ((outcome.tool_call_status if outcome else None) or tool_call.status)
            if tool_call
            else None
        )

    def digests(self) -> dict[str, str]:
        """What the ledger records of the step's rows (`ledger.with_step_digests`)."""
        encode = self._hot.canonical
        digests = outcome_digests(
            self._step_id,
            text_of(self.step_status),
            step_result=self._stored_result,
            call_status=text_of(self.call_status),
            call_result=self._stored_result if self._tool_call else None,
            call_error=self._outcome.tool_error if self._outcome and self._tool_call else None,
            encode=encode,
        )
        digests[STEP_HASH] = step_hash(
            self._step, step_id=self._step_id, args=self._step_args, encode=encode
        )
        if self._args_hash is not None:
            digests[CALL_HASH] = self._args_hash
        return digests

    def batches(
        self, step_number: int, written: Sequence[ChainedEvent]
    ) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """The (table, rows) to insert for the step numbered `step_number`, after `written`."""
        step, outcome, now, hot = self._step, self._outcome, self.now, self._hot
        uuid, now_param = hot.codec.uuid, self._now_param
        step_values: dict[str, Any] = {
            "id": self._step_id,
            "run_id": self.run_key,
            "step_number": step_number,
            "thought": step.thought,
            "tool": step.tool,
            "args": self._step_args,
            "raw_output": step.raw_output,
            "status": self.step_status,
            "result": self._stored_result,
            "model": step.model,
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "latency_ms": step.latency_ms,
            "usage": json_value(step.usage),
            "created_at": now,
            "completed_at": now if outcome else None,
        }
        step_row = (  # STEP_COLUMNS
            uuid(step_values["id"]),
            self._run_param,
            step_number,
            step.thought,
            step.tool,
            json_text(step_values["args"]),
            step.raw_output,
            text_of(step_values["status"]),
            self._result_json,
            step.model,
            step.prompt_tokens,
            step.completion_tokens,
            step.latency_ms,
            json_text(step_values["usage"]),
            now_param,
            now_param if outcome else None,
        )
        call_values = self._call_values(step_values["id"])
        approval_values = None
        if self._approval is not None and call_values is not None:
            assert self._signing_key is not None
            approval_values = _approval_values(
                self.run_key, call_values, self._approval, self._signing_key, now
            )
        self._values = (step_values, call_values, approval_values)
        return [
            (events.name, hot.event_rows(written)),
            (steps.name, [step_row]),
            (tool_calls.name, self._call_rows(call_values)),
            (approvals.name, self._approval_rows(approval_values)),
        ]

    def _call_values(self, step_id: str) -> dict[str, Any] | None:
        """The step's tool call, as the ToolCall it becomes."""
        tool_call, outcome, now = self._tool_call, self._outcome, self.now
        if tool_call is None:
            return None
        return {
            "id": new_id(),
            "run_id": self.run_key,
            "step_id": step_id,
            "tool_name": tool_call.tool_name,
            "args": self._call_args,
            "args_hash": self._args_hash,
            "risk_level": tool_call.risk_level,
            "status": self.call_status,
            "result": self._stored_result,
            "error": outcome.tool_error if outcome else None,
            "duration_ms": outcome.duration_ms if outcome else None,
            "attempts": outcome.attempts if outcome else 0,
            "created_at": now,
            "completed_at": now if outcome and outcome.tool_call_status else None,
        }

    def _call_rows(self, values: dict[str, Any] | None) -> list[tuple[Any, ...]]:
        """The tool call as insert parameters (CALL_COLUMNS), with the step's result and time
        as converted for the step's row."""
        if values is None:
            return []
        uuid, run_param, now_param = self._hot.codec.uuid, self._run_param, self._now_param
        return [
            (
                uuid(values["id"]),
                run_param,
                uuid(values["step_id"]),
                values["tool_name"],
                json_text(values["args"]),
                values["args_hash"],
                text_of(values["risk_level"]),
                text_of(values["status"]),
                self._result_json,
                values["error"],
                values["duration_ms"],
                values["attempts"],
                now_param,
                now_param if values["completed_at"] else None,
            )
        ]

    def _approval_rows(self, values: dict[str, Any] | None) -> list[tuple[Any, ...]]:
        """The approval request as insert parameters (APPROVAL_COLUMNS)."""
        if values is None:
            return []
        uuid, time = self._hot.codec.uuid, self._hot.codec.time
        return [
            (
                uuid(values["id"]),
                self._run_param,
                uuid(values["step_id"]),
                uuid(values["tool_call_id"]),
                values["tool_name"],
                json_text(values["args"]),
                values["args_hash"],
                values["risk_reason"],
                text_of(values["status"]),
                time(values["expires_at"]),
                time(values["created_at"]),
                values["binding"],
            )
        ]

    def started(self, run: Run) -> StepStarted:
        """What was written, once it is (the rows of the last `batches`)."""
        return StepStarted(run, *self._values)


class StepStore(StoreBase):
    """A step with its tool call, approval request, events and run counters, written at once."""

    def list_steps(self, run_id: str) -> list[Step]:
        key = parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                steps.select().where(steps.c.run_id == key).order_by(steps.c.step_number)
            )
            return [as_step(row) for row in rows]

    def get_step(self, step_id: str) -> Step:
        key = parse_id(step_id, "step")
        with self._transaction(write=False) as conn:
            row = conn.execute(steps.select().where(steps.c.id == key)).one_or_none()
        if row is None:
            raise NotFound(f"no step has id {step_id}")
        return as_step(row)

    def interrupted_calls(self, run_id: str) -> list[tuple[Step, ToolCall | None]]:
        """Steps left executing (the process died during their call), with their tool call,
        in step order: what a resumed run settles as "outcome unknown". One query."""
        key = parse_id(run_id, "run")
        call_columns = [column.label(f"call_{column.name}") for column in tool_calls.c]
        query = (
            sa.select(steps, *call_columns)
            .select_from(steps.outerjoin(tool_calls, tool_calls.c.step_id == steps.c.id))
            .where(steps.c.run_id == key, steps.c.status == StepStatus.EXECUTING)
            .order_by(steps.c.step_number)
        )
        with self._transaction(write=False) as conn:
            rows = conn.execute(query).all()
        found: list[tuple[Step, ToolCall | None]] = []
        for row in rows:
            values = row._mapping
            call = None
            if values["call_id"] is not None:
                call = ToolCall.model_validate(
                    {column.name: values[f"call_{column.name}"] for column in tool_calls.c}
                )
            found.append((as_step(row), call))
        return found

    def list_tool_calls(self, run_id: str) -> list[ToolCall]:
        key = parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                tool_calls.select()
                .where(tool_calls.c.run_id == key)
                .order_by(tool_calls.c.created_at, tool_calls.c.id)
            )
            return [as_tool_call(row) for row in rows]

    def start_step(
        self,
        run_id: str,
        step: NewStep,
        *,
        tool_call: NewToolCall | None = None,
        outcome: StepOutcome | None = None,
        approval: NewApproval | None = None,
        signing_key: LedgerKey | None = None,
        run: RunChanges | None = None,
        new_events: Sequence[NewEvent] = (),
    ) -> StepStarted:
        """Record a step, its tool call, its approval request, its events, the run's counters
        and any change to the run, all in one transaction.

        An approval request is bound under `signing_key` (required with it) to its id, tool and
        arguments: what the admin is shown is what may run once approved.

        Without `outcome` the step is `executing` and its tool call `started`: the side effect
        is about to happen and `finish_step` records how it went. With `outcome` the step is
        written already finished (a read-only call already made, a denial, the final answer).
        """
        key = parse_id(run_id, "run")
        now = self.now()
        counters = {
            "steps_count": 1,
            "tool_calls_count": 1 if tool_call else 0,
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
        }
        if approval is not None and tool_call is None:
            raise ValueError("an approval needs the tool call it approves")
        if approval is not None and signing_key is None:
            raise ValueError("an approval is bound under the ledger key: pass it")
        rows = _StepRows(self._hot, key, step, tool_call, outcome, approval, signing_key, now)
        new_events = with_step_digests(new_events, rows.digests(), changes_rows=False)
        head = self._heads.get(key)
        if head is not None:
            started = self._start_step_at_once(key, head, rows, counters, run, new_events)
            if started is not None:
                return started
        with self._hot_transaction() as cursor:
            run_row, written = self._write_run(
                cursor,
                key,
                changes=run,
                add=counters,
                new_events=new_events,
                events_written_by_caller=True,
                now=now,
            )
            assert run_row is not None
            self._hot.insert_rows(cursor, rows.batches(run_row.steps_count, written))
        return rows.started(run_row)

    def _start_step_at_once(
        self,
        key: str,
        head: Head,
        rows: _StepRows,
        counters: dict[str, int],
        run: RunChanges | None,
        new_events: Sequence[NewEvent],
    ) -> StepStarted | None:
        """The step chained to the ledger head this process last wrote, its rows built
        before its write (`_write_at_once`); None, with nothing written, when the run is
        no longer at that head or no longer held."""
        run_row = self._write_at_once(
            key,
            head,
            changes=run,
            add=counters,
            new_events=new_events,
            now=rows.now,
            rows=lambda written: rows.batches(head.steps_count + 1, written),
        )
        return rows.started(run_row) if run_row is not None else None

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
        run_key = parse_id(run_id, "run")
        now = self.now()
        stored_result = to_json_value(outcome.result)
        step_key = parse_id(step_id, "step")
        with_call = tool_call_id is not None
        new_events = with_step_digests(
            new_events,
            outcome_digests(
                step_key,
                text_of(outcome.step_status),
                step_result=stored_result,
                call_status=text_of(outcome.tool_call_status) if with_call else None,
                call_result=stored_result if with_call else None,
                call_error=outcome.tool_error if with_call else None,
                encode=self._hot.canonical,
            ),
        )
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
                    parse_id(tool_call_id, "tool call"),
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
            started = ledger_events.approved_call_started(
                approval_id=approval.id, tool=approval.tool_name, args_hash=approval.args_hash
            )
            digests = step_digests_of(
                approval, StepStatus.EXECUTING, ToolCallStatus.STARTED, result=None, error=None
            )
            self._write_run(
                driver_cursor(conn),
                approval.run_id,
                changes=run,
                new_events=with_step_digests([started], digests),
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
            digests = close_unapproved_step(conn, approval, call_status, error, now=self.now)
            row, _ = self._write_run(
                driver_cursor(conn),
                approval.run_id,
                changes=run,
                new_events=with_step_digests(new_events, digests),
            )
        assert row is not None
        return row

    def step_awaiting_decision(self, run_id: str) -> tuple[Step, ToolCall, Approval] | None:
        """The run's step paused for approval, with its call and approval, if any."""
        key = parse_id(run_id, "run")
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
        return as_step(step_row), as_tool_call(call_row), as_approval(approval_row)


def _approval_values(
    run_key: str,
    call_values: dict[str, Any],
    approval: NewApproval,
    signing_key: LedgerKey,
    now: datetime,
) -> dict[str, Any]:
    """The approval request of a step's call, bound under the ledger key to its id, tool,
    arguments, run, step, call and expiry: what the admin is shown is what may run once
    approved, there and then only."""
    return {
        "id": approval.id,
        "run_id": run_key,
        "step_id": call_values["step_id"],
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
        "binding": signing_key.approval_binding(
            approval_id=approval.id,
            tool=approval.tool_name,
            args=call_values["args"],
            run_id=run_key,
            step_id=call_values["step_id"],
            tool_call_id=call_values["id"],
            expires_at=approval.expires_at,
        ),
    }


def close_unapproved_step(
    conn: sa.Connection,
    approval: Approval,
    call_status: ToolCallStatus,
    error: str,
    *,
    now: Clock,
) -> dict[str, str]:
    """End the step of an approval whose call will never be made (rejected, expired or no
    longer matching what was approved): the call keeps `call_status`, the step fails with
    `error`, which is what the agent observes. Returns what the ledger records of the
    step's rows, for the write's event (`ledger.with_step_digests`)."""
    result = {"error": error}
    conn.execute(
        tool_calls.update()
        .where(tool_calls.c.id == approval.tool_call_id)
        .values(status=call_status, error=error, completed_at=now())
    )
    conn.execute(
        steps.update()
        .where(steps.c.id == approval.step_id)
        .values(status=StepStatus.FAILED, result=result, completed_at=now())
    )
    return step_digests_of(approval, StepStatus.FAILED, call_status, result=result, error=error)


def step_digests_of(
    approval: Approval,
    step_status: StepStatus,
    call_status: ToolCallStatus,
    *,
    result: Any,
    error: str | None,
) -> dict[str, str]:
    """What the ledger records of the rows of an approval's step once they are moved on:
    the step's result is `result`, its call's none (the call was paused before it ran)."""
    return outcome_digests(
        approval.step_id,
        step_status.value,
        step_result=result,
        call_status=call_status.value,
        call_result=None,
        call_error=error,
    )
