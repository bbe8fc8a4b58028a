"""The ledger as stored: appending, listing, verifying and pruning events.

The hash chain is computed by the pure functions of ledger.py; appends go through
`_write_run` (base.py) so that the run's ledger head moves with them. The retention prune is
the only deletion: it leaves a checkpoint per run, signed under the secret key, and on
PostgreSQL the append-only trigger lets it through only inside a transaction that set
PRUNE_SETTING. Verifying checks every chain against the checkpoints and against the signed
seals (seals.py), which reveal what recomputing the hashes would otherwise hide."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from agent_core.errors import NotFound
from agent_core.events import EventType
from agent_core.models import (
    Event,
    LedgerBreak,
    LedgerReport,
    NewEvent,
    RunStatus,
)
from agent_core.render.text import format_duration, format_time
from agent_core.store.base import (
    PRUNE_SETTING,
    StoreBase,
    as_event,
    parse_id,
    upsert_builder,
)
from agent_core.store.ledger import (
    CALL_HASH,
    OUTCOME_HASH,
    STEP_HASH,
    ChainAnchor,
    ChainLink,
    RecordedStep,
    StoredStep,
    outcome_hash,
    recorded_steps,
    step_hash,
    step_rows_problem,
    tool_args_hash,
    unrecorded_step_problem,
    verify_chain,
)
from agent_core.store.schema import (
    events,
    ledger_checkpoints,
    ledger_seal_entries,
    runs,
    steps,
    tool_calls,
)
from agent_core.store.seals import SealCheck, check_seals, checkpoint_signature
from agent_core.store.signing import LedgerKey

__all__ = ["PRUNE_SETTING", "EventLogStore"]

# Runs whose steps are compared with their rows in one query, as verifying goes along.
_RUNS_PER_STEP_CHECK = 200


class EventLogStore(StoreBase):
    """The ledger as stored; the hash chain itself is computed in ledger.py."""

    def append_events(self, run_id: str, new_events: Sequence[NewEvent]) -> list[Event]:
        key = parse_id(run_id, "run")
        with self._hot_transaction() as cursor:
            _, written = self._write_run(cursor, key, new_events=new_events)
        return [event.as_event() for event in written]

    def list_events(self, run_id: str) -> list[Event]:
        key = parse_id(run_id, "run")
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                events.select().where(events.c.run_id == key).order_by(events.c.seq)
            )
            return [as_event(row) for row in rows]

    def approved_call_started(self, run_id: str, approval_id: str) -> bool:
        """Whether the run's ledger says this approval's call was already started: the
        witness that keeps a call from being run twice by someone who resets its rows."""
        key = parse_id(run_id, "run")
        query = sa.select(events.c.data).where(
            events.c.run_id == key, events.c.event_type == EventType.APPROVED_CALL_STARTED.value
        )
        with self._transaction(write=False) as conn:
            return any(
                data.get("approval_id") == approval_id for data in conn.execute(query).scalars()
            )

    def verify_ledger(
        self,
        signing_key: LedgerKey,
        run_id: str | None = None,
        *,
        stale_after: timedelta | None = None,
    ) -> LedgerReport:
        """Recompute every run's hash chain (or one run's) and name the first broken event;
        check the seals (signatures, links, entries) and that every sealed head is still
        there with its hash, and every prune checkpoint's signature.

        `stale_after`: warn when the last seal is older than that (maintenance stopped, or
        the newest seals were deleted)."""
        run_key = parse_id(run_id, "run") if run_id else None
        run_filter = runs.c.id == run_key if run_key else sa.true()
        event_filter = events.c.run_id == run_key if run_key else sa.true()
        with self._transaction(write=False) as conn:
            heads = {
                row.id: ChainAnchor(row.event_seq, None)
                for row in conn.execute(sa.select(runs.c.id, runs.c.event_seq).where(run_filter))
            }
            sealed = check_seals(conn, signing_key, run_key)
            if run_key and not heads and run_key not in sealed.heads:
                raise NotFound(f"no run has id {run_id}")
            warnings: list[str] = []
            breaks: dict[str, LedgerBreak] = {}
            checkpoints: dict[str, ChainAnchor] = {}
            checkpoint_filter = ledger_checkpoints.c.run_id == run_key if run_key else sa.true()
            for row in conn.execute(sa.select(ledger_checkpoints).where(checkpoint_filter)):
                checkpoints[row.run_id] = ChainAnchor(row.seq, row.hash)
                problem = _checkpoint_problem(row, signing_key, sealed)
                if problem and sealed.seals_checked:
                    breaks[row.run_id] = LedgerBreak(
                        run_id=row.run_id, seq=row.seq, problem=problem
                    )
                elif problem:
                    warnings.append(f"run {row.run_id}: {problem}")
            rows = conn.execute(
                sa.select(events, ledger_seal_entries.c.hash.label("sealed_hash"))
                .select_from(
                    events.outerjoin(
                        ledger_seal_entries,
                        sa.and_(
                            ledger_seal_entries.c.run_id == events.c.run_id,
                            ledger_seal_entries.c.seq == events.c.seq,
                        ),
                    )
                )
                .where(event_filter)
                .order_by(events.c.run_id, events.c.seq)
                .execution_options(yield_per=2000)
            )
            events_checked = 0
            verified: set[str] = set()
            recorded: dict[str, dict[str, RecordedStep]] = {}
            for chain_run_id, chain_rows in itertools.groupby(rows, key=lambda row: row.run_id):
                links = [_chain_link(row) for row in chain_rows]
                checked, broken = verify_chain(
                    chain_run_id,
                    links,
                    checkpoint=checkpoints.get(chain_run_id),
                    head=heads.get(chain_run_id, ChainAnchor(0, None)),
                    sealed=_sealed_head(sealed, chain_run_id),
                )
                events_checked += checked
                verified.add(chain_run_id)
                if broken and chain_run_id not in breaks:
                    breaks[chain_run_id] = LedgerBreak(
                        run_id=chain_run_id, seq=broken[0], problem=broken[1]
                    )
                if steps_of_run := recorded_steps(links):
                    recorded[chain_run_id] = steps_of_run
                if len(recorded) >= _RUNS_PER_STEP_CHECK:
                    _check_step_rows(conn, recorded, breaks)
                    recorded.clear()
            _check_step_rows(conn, recorded, breaks)
            for quiet_run_id in heads.keys() - verified:
                _, broken = verify_chain(
                    quiet_run_id,
                    (),
                    checkpoint=checkpoints.get(quiet_run_id),
                    head=heads[quiet_run_id],
                    sealed=_sealed_head(sealed, quiet_run_id),
                )
                if broken and quiet_run_id not in breaks:
                    breaks[quiet_run_id] = LedgerBreak(
                        run_id=quiet_run_id, seq=broken[0], problem=broken[1]
                    )
            for gone_run_id in sealed.heads.keys() - heads.keys():
                seq, _, seal_seq = sealed.heads[gone_run_id]
                breaks.setdefault(
                    gone_run_id,
                    LedgerBreak(
                        run_id=gone_run_id,
                        seq=seq,
                        problem="the run is gone: it was deleted from the database, though seal "
                        f"{seal_seq} recorded its ledger up to event {seq}",
                    ),
                )
        now = self.now()
        age = (now - sealed.last_at).total_seconds() if sealed.last_at else None
        warnings += _seal_warnings(sealed, age, stale_after, has_runs=bool(heads))
        return LedgerReport(
            runs_checked=len(heads),
            events_checked=events_checked,
            breaks=sorted(breaks.values(), key=lambda item: (item.run_id, item.seq)),
            seal_breaks=sealed.breaks,
            seals_checked=sealed.seals_checked,
            first_seal_at=sealed.first_at,
            last_seal_seq=sealed.last_seq,
            last_seal_at=sealed.last_at,
            last_seal_age_s=age,
            warnings=warnings,
        )

    def prune_events(self, *, older_than: datetime, signing_key: LedgerKey) -> int:
        """Delete ended runs' events older than `older_than`, leaving a checkpoint per run,
        signed under `signing_key`, so that the chain of what remains still verifies. Returns how
        many events were deleted."""
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
                deleted += self._prune_run(conn, run_key, last_pruned, signing_key)
        return deleted

    def _prune_run(
        self, conn: sa.Connection, run_key: str, last_pruned: int, key: LedgerKey
    ) -> int:
        anchor = conn.execute(
            sa.select(events.c.hash).where(events.c.run_id == run_key, events.c.seq == last_pruned)
        ).scalar_one_or_none()
        if anchor is None:  # pruned meanwhile by another worker's maintenance
            return 0
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.set_config(PRUNE_SETTING, "on", True)))
        now = self.now()
        values = {
            "seq": last_pruned,
            "hash": anchor,
            "pruned_at": now,
            "signature": key.checkpoint(
                run_id=run_key, seq=last_pruned, hash=anchor, pruned_at=now
            ),
        }
        insert = upsert_builder(self.dialect)(ledger_checkpoints).values(run_id=run_key, **values)
        conn.execute(
            insert.on_conflict_do_update(index_elements=[ledger_checkpoints.c.run_id], set_=values)
        )
        result = conn.execute(
            events.delete().where(events.c.run_id == run_key, events.c.seq <= last_pruned)
        )
        return result.rowcount or 0


def _check_step_rows(
    conn: sa.Connection,
    recorded: dict[str, dict[str, RecordedStep]],
    breaks: dict[str, LedgerBreak],
) -> None:
    """Compare the steps the ledger recorded (by run, then step id) with their rows as they
    are, and name the first step of each run that differs (unless its chain broke)."""
    if not recorded:
        return
    query = (
        sa.select(
            steps.c.run_id,
            steps.c.id,
            steps.c.step_number,
            steps.c.thought,
            steps.c.tool,
            steps.c.args,
            steps.c.raw_output,
            steps.c.model,
            steps.c.prompt_tokens,
            steps.c.completion_tokens,
            steps.c.status,
            steps.c.result,
            tool_calls.c.id.label("call_id"),
            tool_calls.c.run_id.label("call_run_id"),
            tool_calls.c.tool_name.label("call_tool"),
            tool_calls.c.args.label("call_args"),
            tool_calls.c.status.label("call_status"),
            tool_calls.c.result.label("call_result"),
            tool_calls.c.error.label("call_error"),
        )
        .select_from(steps.outerjoin(tool_calls, tool_calls.c.step_id == steps.c.id))
        .where(steps.c.run_id.in_(list(recorded)))
        .order_by(steps.c.id, tool_calls.c.id)
    )
    stored: dict[str, dict[str, StoredStep]] = {}
    calls: dict[str, int] = {}
    for row in conn.execute(query):
        steps_of_run = stored.setdefault(row.run_id, {})
        calls[row.id] = calls.get(row.id, 0) + (row.call_id is not None)
        steps_of_run[row.id] = StoredStep(
            row.step_number,
            _stored_digests(row),
            calls[row.id],
            calls_elsewhere=row.call_id is not None and row.call_run_id != row.run_id,
        )
    for run_id, steps_of_run in recorded.items():
        rows = stored.get(run_id, {})
        problems = [
            problem
            for step_id, recorded_step in steps_of_run.items()
            if (problem := step_rows_problem(recorded_step, rows.get(step_id))) is not None
        ]
        if added := unrecorded_step_problem(steps_of_run, rows):
            problems.append(added)
        if problems and run_id not in breaks:
            seq, sentence = min(problems)
            breaks[run_id] = LedgerBreak(run_id=run_id, seq=seq, problem=sentence)


def _stored_digests(row: Row[Any]) -> dict[str, str]:
    """The digests of a step's rows as they are now (`ledger.step_hash` and the others);
    none for rows holding what JSON cannot (NaN, written by hand), which then differ from
    whatever the ledger recorded."""
    try:
        return _digests_of(row)
    except (ValueError, TypeError, UnicodeError):
        return {}


def _digests_of(row: Row[Any]) -> dict[str, str]:
    with_call = row.call_id is not None
    digests = {
        STEP_HASH: step_hash(row, step_id=row.id, args=row.args),
        OUTCOME_HASH: outcome_hash(
            step_status=row.status,
            step_result=row.result,
            call_status=row.call_status if with_call else None,
            call_result=row.call_result if with_call else None,
            call_error=row.call_error if with_call else None,
        ),
    }
    if with_call:
        digests[CALL_HASH] = tool_args_hash(row.call_tool, row.call_args)
    return digests


def _chain_link(row: Row[Any]) -> ChainLink:
    return ChainLink(
        seq=row.seq,
        event_type=row.event_type,
        data=row.data,
        created_at=row.created_at,
        prev_hash=row.prev_hash,
        hash=row.hash,
        sealed_hash=row.sealed_hash,
    )


def _sealed_head(sealed: SealCheck, run_id: str) -> ChainAnchor | None:
    head = sealed.heads.get(run_id)
    return ChainAnchor(head[0], head[1]) if head else None


def _checkpoint_problem(row: Row[Any], key: LedgerKey, sealed: SealCheck) -> str | None:
    """What is wrong with a prune checkpoint's signature, if anything."""
    if row.signature is None:
        if sealed.seals_checked:
            return (
                f"the prune checkpoint at event {row.seq} is not signed: events 1 to {row.seq} "
                "were deleted outside the runtime's retention prune"
            )
        return (
            f"the prune checkpoint at event {row.seq} is unsigned (written before seals): "
            "the first seal will adopt it"
        )
    if not key.matches(row.signature, checkpoint_signature(key, row)):
        return (
            f"the prune checkpoint at event {row.seq} is forged (its signature is not this "
            f"runtime's): events 1 to {row.seq} were deleted outside the retention prune"
        )
    return None


def _seal_warnings(
    sealed: SealCheck, age_s: float | None, stale_after: timedelta | None, *, has_runs: bool
) -> list[str]:
    if sealed.last_at is None or age_s is None:
        if not has_runs:
            return []
        return [
            "the ledger has no seal yet: until the worker's maintenance (or `.venv/bin/python "
            "-m agent_core ledger seal`) writes one, a chain rewritten with recomputed hashes "
            "or a deleted run cannot be detected"
        ]
    if stale_after is not None and age_s > stale_after.total_seconds():
        return [
            f"the last seal ({sealed.last_seq}, {format_time(sealed.last_at)}) is "
            f"{format_duration(int(age_s * 1000))} old, more than twice the maintenance "
            "interval: maintenance may have stopped, or the newest seals were deleted "
            "(changes since the last seal cannot be checked)"
        ]
    return []
