"""The hash chain of the audit ledger: pure functions, no I/O.

Each event's hash covers its run, sequence number, type, data, time and the previous event's
hash, over canonical JSON. Changing, removing or adding an event therefore breaks the chain
at a place `verify_chain` can name. Pruned prefixes leave a checkpoint (the hash of the last
pruned event) that the remaining chain starts from.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from agent_core.models import NewEvent, storable_text

GENESIS_HASH = "0" * 64
# From here on a float is a whole number (2**53 < 1e16), which Python writes with an exponent
# and PostgreSQL's JSONB with all its digits.
_WHOLE_FLOATS = 1e16


def to_json_value(value: Any) -> Any:
    """A JSON-native copy of `value`, the same after a round trip through JSONB or SQLite.

    Non-finite floats become None, -0.0 becomes 0.0 (as JSONB keeps it), a float of 1e16
    or more the whole number it is (JSONB gives it back as one: 1e+16 would come back
    10000000000000000, and an event hashed over the first would no longer match its hash),
    text is made storable (`models.storable_text`: no NUL, no lone surrogate), and anything
    else that JSON cannot hold becomes its string form.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value == 0:  # -0.0 too, which JSONB gives back as 0.0
            return 0.0
        return int(value) if abs(value) >= _WHOLE_FLOATS else value
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(key)): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(item) for item in value]
    if isinstance(value, datetime):
        return canonical_time(value)
    if hasattr(value, "model_dump"):
        return to_json_value(value.model_dump(mode="json"))
    return storable_text(str(value))


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_time(moment: datetime) -> str:
    """UTC with microseconds; a naive time (SQLite gives those back) is taken as UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    run_id: str,
    seq: int,
    event_type: str,
    data: Any,
    created_at: datetime,
    prev_hash: str,
) -> str:
    return sha256_hex(
        canonical_json(
            {
                "run_id": run_id,
                "seq": seq,
                "event_type": event_type,
                "data": data,
                "created_at": canonical_time(created_at),
                "prev_hash": prev_hash,
            }
        )
    )


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One stored event, as the verifier reads it, with the hash a seal recorded for it when
    it was a run's head at sealing time (None when no seal did)."""

    seq: int
    event_type: str
    data: Any
    created_at: datetime
    prev_hash: str
    hash: str
    sealed_hash: str | None = None


@dataclass(frozen=True, slots=True)
class ChainAnchor:
    """A known point of a chain: a checkpoint left by pruning, or the head the run recorded."""

    seq: int
    hash: str | None


def verify_chain(
    run_id: str,
    links: Iterable[ChainLink],
    *,
    checkpoint: ChainAnchor | None,
    head: ChainAnchor,
    sealed: ChainAnchor | None = None,
) -> tuple[int, tuple[int, str] | None]:
    """Walk one run's events in sequence order.

    Besides the chain itself, every event a seal recorded (`ChainLink.sealed_hash`) must
    still have that hash, and the newest sealed head (`sealed`) must still exist unless a
    checkpoint covers it: a chain rewritten with recomputed hashes, or cut short together
    with the run's head, is caught there.

    Returns how many events were checked and, if the chain is broken, the sequence number of
    the first broken event with a sentence saying what is wrong with it.
    """
    expected_seq = checkpoint.seq + 1 if checkpoint else 1
    expected_prev = checkpoint.hash if checkpoint and checkpoint.hash else GENESIS_HASH
    trusted_up_to = expected_seq - 1  # the last event known to match a seal (or the start)
    checked = 0
    for link in links:
        checked += 1
        if link.seq > expected_seq:
            missing = (
                f"event {expected_seq} is missing"
                if link.seq == expected_seq + 1
                else f"events {expected_seq} to {link.seq - 1} are missing"
            )
            return checked, (expected_seq, f"{missing}: deleted from the ledger")
        if link.seq < expected_seq:
            return checked, (link.seq, "event is out of sequence: a duplicate or an insertion")
        if link.prev_hash != expected_prev:
            return checked, (
                link.seq,
                "event does not link to the event before it: an event was inserted, "
                "replaced or re-hashed here",
            )
        try:
            computed = event_hash(
                run_id=run_id,
                seq=link.seq,
                event_type=link.event_type,
                data=link.data,
                created_at=link.created_at,
                prev_hash=link.prev_hash,
            )
        except (ValueError, TypeError, UnicodeError):  # NaN and the like: written by hand
            computed = None
        if computed != link.hash:
            return checked, (link.seq, "event content does not match its hash: it was edited")
        if link.sealed_hash is not None:
            if link.sealed_hash != link.hash:
                return checked, (link.seq, _rewritten(trusted_up_to + 1, link.seq))
            trusted_up_to = link.seq
        expected_prev = link.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if head.seq > last_seq:
        missing = (
            f"event {head.seq} is missing"
            if head.seq == last_seq + 1
            else f"events {last_seq + 1} to {head.seq} are missing"
        )
        return checked, (last_seq + 1, f"{missing}: the run recorded {head.seq} events")
    if head.seq < last_seq:
        return checked, (
            head.seq + 1,
            f"event was added outside the runtime: the run recorded only {head.seq} events",
        )
    if head.seq and head.hash is not None and head.hash != expected_prev:
        return checked, (last_seq, "last event does not match the hash the run recorded")
    covered = checkpoint.seq if checkpoint else 0
    if sealed is not None and sealed.seq > max(last_seq, covered):
        missing = (
            f"event {sealed.seq} is missing"
            if sealed.seq == last_seq + 1
            else f"events {last_seq + 1} to {sealed.seq} are missing"
        )
        return checked, (
            last_seq + 1,
            f"{missing}: deleted, with the run's count of events lowered to match, though a "
            f"seal recorded the ledger up to event {sealed.seq}",
        )
    return checked, None


def _rewritten(first: int, seq: int) -> str:
    where = f"event {seq}" if first == seq else f"one of events {first} to {seq}"
    return (
        f"event no longer has the hash a seal recorded for it: {where} was changed, "
        "inserted, deleted or moved and the chain's hashes recomputed"
    )


def tool_args_hash(tool_name: str, args: Any) -> str:
    """What an approval binds to: the tool and its exact arguments."""
    return sha256_hex(canonical_json({"tool": tool_name, "args": to_json_value(args)}))


# --- the rows of a step, as the ledger records them -------------------------------------------

# What a write of a step's rows adds to its first event: the step's id and digests of what it
# wrote. A later write of the same step records newer digests; `ledger verify` compares the
# newest ones with the rows as they are, so an edit of a finished step is found.
STEP_ID = "step_id"
STEP_HASH = "step_hash"  # the step's words and request: thought, reply, tool, arguments, model
CALL_HASH = "call_hash"  # the call's tool and arguments (`tool_args_hash`): what ran
OUTCOME_HASH = "outcome_hash"  # the step's and the call's status, result and error
STEP_STATUS = "step_status"  # the step's status after the write, in plain text
STEP_DIGESTS = (STEP_HASH, CALL_HASH, OUTCOME_HASH)
_FINAL_STEP_STATUSES = frozenset({"completed", "failed"})
_AWAITING_APPROVAL = "awaiting_approval"
Encode = Callable[[Any], str]


class StepWords(Protocol):
    """What the model said and spent in a step: a NewStep as written, or its row as read."""

    thought: str | None
    tool: str | None
    raw_output: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


def step_hash(step: StepWords, *, step_id: str, args: Any, encode: Encode = canonical_json) -> str:
    """What the model asked for in a step, as stored (`args` already JSON: `to_json_value`);
    fixed once the step is written. The tokens are there because the run's cost is
    computed from them."""
    return _digest(
        encode,
        {
            "id": step_id,
            "thought": step.thought,
            "tool": step.tool,
            "args": args,
            "raw_output": step.raw_output,
            "model": step.model,
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
        },
    )


def outcome_hash(
    *,
    step_status: str,
    step_result: Any,
    call_status: str | None,
    call_result: Any,
    call_error: str | None,
    encode: Encode = canonical_json,
) -> str:
    """How a step stands, as stored (results already JSON): what the agent observed and the
    dashboard shows. A step without a tool call has None for the call's parts."""
    return _digest(
        encode,
        {
            "step_status": step_status,
            "step_result": step_result,
            "call_status": call_status,
            "call_result": call_result,
            "call_error": call_error,
        },
    )


def outcome_digests(
    step_id: str,
    step_status: str,
    *,
    step_result: Any,
    call_status: str | None,
    call_result: Any,
    call_error: str | None,
    encode: Encode = canonical_json,
) -> dict[str, str]:
    """What a write that sets a step's status records of it (`with_step_digests`): the
    step's id, its status in plain text and the `outcome_hash` of what the write stored."""
    return {
        STEP_ID: step_id,
        STEP_STATUS: step_status,
        OUTCOME_HASH: outcome_hash(
            step_status=step_status,
            step_result=step_result,
            call_status=call_status,
            call_result=call_result,
            call_error=call_error,
            encode=encode,
        ),
    }


def _digest(encode: Encode, covered: dict[str, Any]) -> str:
    return hashlib.sha256(encode(covered).encode("utf-8")).hexdigest()


def with_step_digests(
    new_events: Sequence[NewEvent], digests: dict[str, str], *, changes_rows: bool = True
) -> list[NewEvent]:
    """`new_events` with the step's id and digests (`digests`) added to the first one, so
    that a write of a step's rows records them in the same transaction.

    A write that changes rows already recorded needs an event, or their recorded digests
    would no longer match (ValueError). A new step written without one (`changes_rows`
    False: a bare row) is recorded by none, and not compared until a later write records it.
    """
    if not new_events:
        if changes_rows:
            raise ValueError("a change to a step's rows is recorded in the ledger: pass its event")
        return []
    first, *rest = new_events
    return [NewEvent(event_type=first.event_type, data={**first.data, **digests}), *rest]


@dataclass(slots=True)
class RecordedStep:
    """The newest digests the ledger holds for one step, each with the event recording it,
    the step's number as its events gave it, and the first record that breaks the order in
    which the runtime writes a step (`problem`).

    That order: the step is recorded once with its words (`step_hash`); its call's
    arguments change only while it awaits approval (an admin's changes); nothing is
    recorded of it once it has finished (completed or failed). Digests appended later for
    a finished step, even in a well-chained event, are therefore caught."""

    digests: dict[str, tuple[int, str]] = field(default_factory=dict)
    number: tuple[int, int] | None = None
    first_seq: int = 0
    status: str | None = None
    problem: tuple[int, str] | None = None

    def record(self, seq: int, data: dict[str, Any]) -> None:
        if self.problem is not None:
            return
        self.problem = self._out_of_order(seq, data)
        if self.problem is not None:
            return
        self.first_seq = self.first_seq or seq
        for name in STEP_DIGESTS:
            value = data.get(name)
            if isinstance(value, str):
                self.digests[name] = (seq, value)
        number = data.get("step_number")
        if isinstance(number, int) and self.number is None:
            self.number = (seq, number)
        status = data.get(STEP_STATUS)
        self.status = status if isinstance(status, str) else self.status

    def _out_of_order(self, seq: int, data: dict[str, Any]) -> tuple[int, str] | None:
        if not self.first_seq:
            return None
        appended = "an event was appended outside the runtime to change it"
        if self.status in _FINAL_STEP_STATUSES:
            return seq, f"a step that had finished is recorded again here: {appended}"
        if STEP_HASH in data:
            return seq, f"a step's thought, reply and arguments are recorded twice: {appended}"
        if CALL_HASH in data and self.status != _AWAITING_APPROVAL:
            return seq, (
                f"a step's call arguments are recorded again though it awaited no approval: "
                f"{appended}"
            )
        return None


@dataclass(frozen=True, slots=True)
class StoredStep:
    """A step's rows as they are now: its number, their digests and how many tool calls
    point at it (one at most, as the runtime writes them)."""

    number: int
    digests: dict[str, str]
    calls: int
    calls_elsewhere: bool = False  # a call of this step counted in another run


def recorded_steps(links: Iterable[ChainLink]) -> dict[str, RecordedStep]:
    """The steps a run's events record digests of, by step id (events in sequence order,
    so that a later write's digests replace an earlier one's)."""
    found: dict[str, RecordedStep] = {}
    for link in links:
        data = link.data
        if isinstance(data, dict) and isinstance(data.get(STEP_ID), str):
            found.setdefault(data[STEP_ID], RecordedStep()).record(link.seq, data)
    return found


_WHAT = {
    STEP_HASH: "its thought, reply, tool or arguments",
    CALL_HASH: "its tool call's tool or arguments",
    OUTCOME_HASH: "its status, result or error",
}


def step_rows_problem(recorded: RecordedStep, stored: StoredStep | None) -> tuple[int, str] | None:
    """Where the stored rows of a step differ from what the ledger recorded: the sequence
    number of the event that recorded what differs, and a sentence (None when they agree).
    `stored` is None when the step's row is gone."""
    if recorded.problem is not None:
        return recorded.problem
    if stored is None:
        return recorded.first_seq, (
            "a step this event recorded is gone: its row was deleted or moved to another run"
        )
    if recorded.number is not None and recorded.number[1] != stored.number:
        return recorded.number[0], (
            f"the step this event recorded as step {recorded.number[1]} is now numbered "
            f"{stored.number}: steps were renumbered or reordered"
        )
    if stored.calls > 1:
        return recorded.first_seq, (
            f"step {stored.number} now has {stored.calls} tool calls: calls were added to it "
            "outside the runtime"
        )
    if stored.calls_elsewhere:
        return recorded.first_seq, (
            f"step {stored.number}'s tool call now belongs to another run: it was moved "
            "outside the runtime"
        )
    for name in STEP_DIGESTS:
        if name in recorded.digests and recorded.digests[name][1] != stored.digests.get(name):
            return recorded.digests[name][0], (
                f"step {stored.number} was edited after this event recorded it: {_WHAT[name]} "
                "no longer match what the ledger recorded"
            )
    return None


def unrecorded_step_problem(
    recorded: dict[str, RecordedStep], stored: dict[str, StoredStep]
) -> tuple[int, str] | None:
    """A step row no event records, numbered after the run's first recorded step (steps
    before it may come from a version that recorded none) or below 1 (the runtime numbers
    from 1): added outside the runtime."""
    numbers = [step.number for step_id, step in stored.items() if step_id in recorded]
    if not numbers:
        return None
    first = min(numbers)
    added = sorted(
        step.number
        for step_id, step in stored.items()
        if step_id not in recorded and (step.number > first or step.number < 1)
    )
    if not added:
        return None
    seq = min(step.first_seq for step in recorded.values())
    return seq, (f"step {added[0]} is in no event of the ledger: it was added outside the runtime")
