"""The writes every step makes, as plain SQL run on the driver connection.

A step writes a handful of rows; through SQLAlchemy's execution machinery each statement
costs several times what the database itself takes. These few statements are therefore
kept here as plain SQL, built once per shape from the declared tables, and executed on the
DBAPI connection inside the Store's own transaction. Values are always bound parameters,
given as tuples in the column order declared here. The codec below stores exactly what
SQLAlchemy's column types store (tests read every row back through SQLAlchemy on both
backends), so the rest of the Store is unaware of it.

Each value is converted once per step: the step's time, the run's id and a result's JSON
are shared by the rows that hold them, and an event's payload is encoded once, as the
canonical JSON its hash covers, which is also the text stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii
from typing import Any, NamedTuple

import sqlalchemy as sa

from agent_core.models import Event, NewEvent, Objective, Run, RunStatus, is_utf8_text
from agent_core.store.ledger import to_json_value
from agent_core.store.schema import (
    JSONDocument,
    UTCDateTime,
    approvals,
    events,
    ledger_checkpoints,
    objectives,
    runs,
    steps,
    tool_calls,
)

RUN_COLUMNS = tuple(column.name for column in runs.c)
OBJECTIVE_COLUMNS = tuple(column.name for column in objectives.c)
_DECODED_MAX = 1024  # decoded ids and times remembered (a few per run being executed)
HEADS_MAX = 1024  # ledger heads remembered for one-trip step writes (one per run executing)
# The most values a one-trip write binds (SQLite's view takes one column per value, and has
# at most 2000): a larger write (hundreds of events at once) takes the usual path.
AT_ONCE_MAX_VALUES = 1000
# The columns of the rows a step inserts, in the order of the value tuples given for them.
EVENT_COLUMNS = ("run_id", "seq", "event_type", "data", "created_at", "prev_hash", "hash")
STEP_COLUMNS = (
    "id",
    "run_id",
    "step_number",
    "thought",
    "tool",
    "args",
    "raw_output",
    "status",
    "result",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "usage",
    "created_at",
    "completed_at",
)
CALL_COLUMNS = (
    "id",
    "run_id",
    "step_id",
    "tool_name",
    "args",
    "args_hash",
    "risk_level",
    "status",
    "result",
    "error",
    "duration_ms",
    "attempts",
    "created_at",
    "completed_at",
)
APPROVAL_COLUMNS = (
    "id",
    "run_id",
    "step_id",
    "tool_call_id",
    "tool_name",
    "args",
    "args_hash",
    "risk_reason",
    "status",
    "expires_at",
    "created_at",
    "binding",
)
_TABLES = {table.name: table for table in (events, steps, tool_calls, approvals)}
ROW_COLUMNS = {
    events.name: EVENT_COLUMNS,
    steps.name: STEP_COLUMNS,
    tool_calls.name: CALL_COLUMNS,
    approvals.name: APPROVAL_COLUMNS,
}


# Rows to insert, by table: (table name, rows in the order of its ROW_COLUMNS).
RowBatches = Sequence[tuple[str, Sequence[tuple[Any, ...]]]]

_PLAIN_TYPES = frozenset({int, bool, type(None)})


def json_value(value: Any) -> Any:
    """`ledger.to_json_value(value)`, without copying a flat dict that is JSON already
    (string keys; storable strings, integers, booleans, None): the usual event payload,
    tool arguments and result, returned as they are."""
    if type(value) is dict and _flat_json(value):
        return value
    return to_json_value(value)


def _flat_json(mapping: dict[Any, Any]) -> bool:
    for key, item in mapping.items():
        if type(key) is not str or "\x00" in key or not is_utf8_text(key):
            return False
        kind = type(item)
        if kind is str:
            if "\x00" in item or not is_utf8_text(item):
                return False
        elif kind not in _PLAIN_TYPES:
            return False
    return True


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_encoder(*, canonical: bool, ensure_ascii: bool = True) -> Callable[[Any], str]:
    """json.dumps of JSON values on one C encoder built once (json.dumps builds one per
    call): canonical (sorted keys, compact, Unicode kept, no NaN: `ledger.canonical_json`)
    or as json.dumps writes with its defaults (and `ensure_ascii`). Values are trees (JSON
    values), so there is no check for cycles."""
    if canonical:
        encode = c_make_encoder(
            None, _not_serializable, encode_basestring, None, ":", ",", True, False, False
        )
    else:
        strings = encode_basestring_ascii if ensure_ascii else encode_basestring
        encode = c_make_encoder(
            None, _not_serializable, strings, None, ": ", ", ", False, False, True
        )
    return lambda value: "".join(encode(value, 0))


_DUMPS = json_encoder(canonical=False)


def json_text(value: Any) -> str | None:
    """A JSON column's parameter (None stays NULL); no arguments is the common case."""
    if value is None:
        return None
    return "{}" if value == {} else _DUMPS(value)


def text_of(value: Any) -> Any:
    """An enum as its value: what a String column stores."""
    return value.value if isinstance(value, Enum) else value


def ledger_time(moment: datetime) -> str:
    """`ledger.canonical_time` (UTC, microseconds, 'Z'), by isoformat rather than strftime."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat("T", "microseconds") + "Z"


def _same(value: Any) -> Any:
    return value


def _sqlite_uuid_param(value: Any) -> Any:
    # Ids reach the store in canonical form (new_id, or checked by parse_id).
    return None if value is None else value.replace("-", "")


def _sqlite_time_param(value: Any) -> Any:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_time_result(value: Any) -> Any:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _uuid_result(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite: 32 hex digits
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(value)


def _as_utc(value: Any) -> Any:
    """A time in UTC: what PostgreSQL is given and gives back, and what a time comes back
    as from either database."""
    return None if value is None else value.astimezone(UTC)


def _json_time(value: Any) -> str:
    return "null" if value is None else f'"{value.isoformat()}"'


def _json_document(value: Any) -> str:
    return "null" if value is None else value  # type: ignore[no-any-return]


# A PostgreSQL row parameter as a JSON value, by column kind (`HotPath._row_json_encoder`).
_JSON_FIELDS: dict[str, Callable[[Any], str]] = {
    "uuid": _DUMPS,
    "time": _json_time,
    "json": _json_document,
    "plain": _DUMPS,
}
# What `app_agent_write_step` (migrations.step_function) covers: the run columns it sets
# when named, the counters it adds to, and the tables whose rows it inserts, in its
# parameters' order.
STEP_FUNCTION_SETS = frozenset(
    {
        "status",
        "stop_reason",
        "summary",
        "error",
        "previous_run_id",
        "started_at",
        "completed_at",
        "lease_owner",
        "lease_expires_at",
        "cancel_requested_at",
        "attempts",
        "active_ms",
    }
)
_FUNCTION_ADDS = frozenset(
    {"steps_count", "tool_calls_count", "prompt_tokens", "completion_tokens"}
)
_FUNCTION_ROWS = (events.name, steps.name, tool_calls.name, approvals.name)


class Codec:
    """Python values to driver parameters and back, per backend and column kind."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.uuid: Callable[[Any], Any] = _sqlite_uuid_param if self.sqlite else _same
        self.time: Callable[[Any], Any] = _sqlite_time_param if self.sqlite else _as_utc
        self._params: dict[str, Callable[[Any], Any]] = {
            "uuid": self.uuid,
            "time": self.time,
            "json": json_text,
            "plain": text_of,
        }
        self._results: dict[str, Callable[[Any], Any]] = {
            "uuid": _uuid_result,
            "time": _sqlite_time_result if self.sqlite else _as_utc,
            "json": _json_result,
            "plain": _same,
        }

    def converter(self, kind: str) -> Callable[[Any], Any]:
        return self._params[kind]

    def param(self, value: Any, kind: str) -> Any:
        return self._params[kind](value)

    def decoder(self, kind: str) -> Callable[[Any], Any]:
        return self._results[kind]

    def placeholder(self, name: str) -> str:
        return f":{name}" if self.sqlite else f"%({name})s"

    def marks(self, count: int) -> str:
        """`count` positional placeholders."""
        return ", ".join(["?" if self.sqlite else "%s"] * count)


def _json_result(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _hash_at(seq: str, run: str = "app_agent_runs.id") -> str:
    """SQL: the hash of the run's event number `seq` (of its checkpoint once compacted)."""
    return (
        f"COALESCE((SELECT e.hash FROM {events.name} e WHERE e.run_id = {run} "
        f"AND e.seq = {seq}), (SELECT c.hash FROM {ledger_checkpoints.name} c "
        f"WHERE c.run_id = {run} AND c.seq = {seq}))"
    )


def _kind(column: sa.Column[Any]) -> str:
    if isinstance(column.type, sa.Uuid):
        return "uuid"
    if isinstance(column.type, UTCDateTime):
        return "time"
    if isinstance(column.type, JSONDocument):
        return "json"
    return "plain"


class ChainedEvent(NamedTuple):
    """An event chained to the one before it, with its payload as stored (`data_json`,
    the canonical JSON its hash covers)."""

    run_id: str
    seq: int
    event_type: str
    data: dict[str, Any]
    data_json: str
    created_at: datetime
    prev_hash: str
    hash: str

    def as_event(self) -> Event:
        return Event.model_validate(
            {
                "run_id": self.run_id,
                "seq": self.seq,
                "event_type": self.event_type,
                "data": self.data,
                "created_at": self.created_at,
                "prev_hash": self.prev_hash,
                "hash": self.hash,
            }
        )


class Head(NamedTuple):
    """A run's ledger head as this process last wrote it: its event count, step count and
    last event's hash, and the run as that write left it. What a one-trip write
    (`write_step_at_once`: a step, or another change of the run by its worker) builds on,
    and has the database check before anything is written."""

    event_seq: int
    steps_count: int
    hash: str
    run: Run


class _RunUpdate(NamedTuple):
    """The run update for one shape of change: its SQL and how to fill its parameters."""

    sql: str
    key: tuple[Any, ...]  # the shape: what `_run_update` built it from
    set_params: tuple[tuple[str, str, Callable[[Any], Any]], ...]  # (key, column, convert)
    add_params: tuple[tuple[str, str], ...]
    first_params: tuple[tuple[str, str, Callable[[Any], Any]], ...]


# What the SQLite step trigger raises when the run is not at the expected head.
_NOT_AT_HEAD = "agent runtime: the run is not at the ledger head this step was built on"


class _StepStatement(NamedTuple):
    """SQLite: the statement that writes a step of one shape, and what it needs created.
    Its parameters are positional (`?`), which the driver binds in a third of the time it
    takes to look each of some 70 names up: the run update's (`run_names`, from the run
    update's parameters), then the rows' values in order."""

    view: str
    insert: str
    create: tuple[str, ...]
    run_names: tuple[str, ...]


class HotPath:
    """The step writes for one backend: run update (with the previous event's hash in its
    RETURNING), the chaining of new events, and inserts of events, steps, tool calls and
    approvals. One per Store; the SQL of each shape is built once."""

    def __init__(self, dialect: str) -> None:
        self.codec = Codec(dialect)
        self._run_kinds = {column.name: _kind(column) for column in runs.c}
        self._run_times = frozenset(
            name for name, kind in self._run_kinds.items() if kind == "time"
        )
        kinds = [_kind(column) for column in runs.c]
        self._run_decoders = tuple(
            (tuple(i for i, each in enumerate(kinds) if each == kind), self.codec.decoder(kind))
            for kind in ("uuid", "time")
        )
        self._decoded: dict[Any, Any] = {}
        self.canonical = json_encoder(canonical=True)
        self._run_updates: dict[tuple[Any, ...], _RunUpdate] = {}
        self._inserts: dict[tuple[Any, ...], str] = {}
        self._updates: dict[tuple[str, tuple[str, ...]], tuple[str, Any]] = {}
        # PostgreSQL: whether this role may call the schema's step function (a role that
        # does not own the schema may not: its steps are then written the usual way).
        self.step_function = True
        self._row_json = {table: self._row_json_encoder(table) for table in _FUNCTION_ROWS}
        self._step_call = (
            f"SELECT {', '.join(RUN_COLUMNS)} FROM app_agent_write_step(%s::uuid, %s::text, "
            "%s::timestamptz, %s::integer, %s::integer, %s::text, %s::jsonb, %s::integer, "
            "%s::integer, %s::bigint, %s::bigint, %s::integer, %s::json, %s::json, "
            "%s::json, %s::json)"
        )
        self._step_statements: dict[tuple[Any, ...], _StepStatement] = {}
        self._objective_decoders = (
            OBJECTIVE_COLUMNS,
            tuple(self.codec.decoder(_kind(column)) for column in objectives.c),
        )
        self._run_select = (
            f"SELECT {', '.join(RUN_COLUMNS)} FROM app_agent_runs "
            f"WHERE id = {self.codec.placeholder('p_run_id')}"
        )
        self._last_time: tuple[datetime | None, Any] = (None, None)

    def _row_json_encoder(self, table: str) -> Callable[[tuple[Any, ...]], str]:
        """A row of `table` (its ROW_COLUMNS' parameters, as the PostgreSQL codec makes
        them) as the JSON object `json_populate_recordset` reads: a JSON column's text
        is put in as it is, a time in ISO 8601 with its offset."""
        fields = tuple(
            (f"{encode_basestring(column)}:", _JSON_FIELDS[_kind(_TABLES[table].c[column])])
            for column in ROW_COLUMNS[table]
        )

        def encode(row: tuple[Any, ...]) -> str:
            return (
                "{"
                + ",".join(
                    [name + field(value) for (name, field), value in zip(fields, row, strict=True)]
                )
                + "}"
            )

        return encode

    def time_param(self, moment: datetime) -> Any:
        """`codec.time(moment)`, remembering the last moment converted: the rows of a step
        all carry its time. (The pair is replaced at once: threads sharing it stay right.)"""
        last = self._last_time
        if last[0] is moment:
            return last[1]
        param = self.codec.time(moment)
        self._last_time = (moment, param)
        return param

    # --- the run ------------------------------------------------------------------------------

    def update_run(
        self,
        cursor: Any,
        *,
        run_key: str,
        set_values: Mapping[str, Any],
        added: Mapping[str, int],
        first_values: Mapping[str, Any] | None = None,
        new_events: int,
        now: datetime,
        owner: str | None,
        only_if_claimable: bool,
    ) -> tuple[Run, str | None] | None:
        """Apply the change; returns the run and the hash of the event before the new ones,
        or None when no row matched (the run is gone, or the condition failed)."""
        first_values = first_values or {}
        shape = self._run_update(
            (tuple(set_values), tuple(added), tuple(first_values), owner is not None),
            only_if_claimable,
        )
        params = self._run_params(
            shape, run_key, set_values, added, first_values, new_events, now, owner
        )
        if only_if_claimable:
            params["p_running"], params["p_queued"] = (
                RunStatus.RUNNING.value,
                RunStatus.QUEUED.value,
            )
        cursor.execute(shape.sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return self.run_of(row), row[-1]

    def _run_params(
        self,
        shape: _RunUpdate,
        run_key: str,
        set_values: Mapping[str, Any],
        added: Mapping[str, int],
        first_values: Mapping[str, Any],
        new_events: int,
        now: datetime,
        owner: str | None,
    ) -> dict[str, Any]:
        """The parameters of a run update of this shape."""
        params: dict[str, Any] = {
            "p_run_id": self.codec.uuid(run_key),
            "p_owner": owner,
            "p_now": self.time_param(now),
            "p_events": new_events,
        }
        for key, name, convert in shape.set_params:
            params[key] = convert(set_values[name])
        for key, name in shape.add_params:
            params[key] = added[name]
        for key, name, convert in shape.first_params:
            params[key] = convert(first_values[name])
        return params

    def write_step_at_once(
        self,
        cursor: Any,
        *,
        run_key: str,
        set_values: Mapping[str, Any],
        added: Mapping[str, int],
        new_events: int,
        now: datetime,
        owner: str | None,
        head: Head,
        batches: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
    ) -> Run | None:
        """A step (or another change of the run, with its events) whose rows were built
        before its transaction, on `head`, the ledger head this process last wrote: the
        run as the write left it, or None when nothing was written.

        The run update only matches while the run is at that head (its event count, step
        count and last event's hash, checked by the database) and still held by `owner`;
        the rows are inserted only when it matched. Otherwise the caller writes the step
        the usual way, which finds the head (or raises LeaseLost, NotFound).

        On PostgreSQL it is one statement, for a cursor in autocommit: a call of the
        schema's function that does all of it (`_write_step_postgresql`), the transaction,
        one round trip with its COMMIT. On SQLite, one statement too, into a view whose
        trigger does the same (`_write_step_sqlite`), for a cursor in autocommit: the write
        lock is held for the SQL alone, none of the Python that built the rows.

        The run is not read back when it can be known without (`run_after`): a write that
        sets the lease, as every write of a run by its worker does. Otherwise it is read
        (SQLite) or decoded from what the call returned (PostgreSQL)."""
        known = "lease_expires_at" in set_values
        if not self.codec.sqlite:
            row = self._write_step_postgresql(
                cursor, run_key, set_values, added, new_events, now, owner, head, batches
            )
            if row is None:
                return None
        else:
            batches = [(table, rows) for table, rows in batches if rows]
            shape = self._run_update(
                (tuple(set_values), tuple(added), (), owner is not None), False, guarded=True
            )
            params = self._run_params(shape, run_key, set_values, added, {}, new_events, now, owner)
            params["g_seq"], params["g_steps"], params["g_hash"] = head[:3]
            if not self._write_step_sqlite(cursor, shape, params, batches):
                return None
            if not known:
                cursor.execute(self._run_select, {"p_run_id": params["p_run_id"]})
                row = cursor.fetchone()
        if known:
            return self.run_after(head.run, set_values, added, new_events, now)
        return self.run_of(row)

    def run_after(
        self,
        run: Run,
        set_values: Mapping[str, Any],
        added: Mapping[str, int],
        new_events: int,
        now: datetime,
    ) -> Run:
        """The run as a one-trip write on its head leaves it, without reading it back:
        `run` as this process last wrote it, with what this write sets and adds, and what
        every run update changes (its event count, its time of update).

        The database's row is the same. The write matched only at this process's ledger
        head, and every change of a run appends to its ledger but the renewal of its lease
        (`renew_leases`), whose one column the writes that come here set. (A write without
        events is possible through `update_run`, which the runtime does not make: one from
        another process would go unseen here.) Times are given as the database gives them
        back, in UTC, and ids in canonical form (`_run_changes`). Tests hold the two equal
        after every kind of write, on both databases. (Validating the run again costs less
        than `model_copy`, and gives an enum's value as the enum.)"""
        values = dict(run.__dict__)
        times = self._run_times
        for name, value in set_values.items():
            values[name] = _as_utc(value) if name in times else value
        for name, amount in added.items():
            values[name] += amount
        values["event_seq"] += new_events
        values["updated_at"] = _as_utc(now)
        return Run.model_validate(values)

    def _write_step_postgresql(
        self,
        cursor: Any,
        run_key: str,
        set_values: Mapping[str, Any],
        added: Mapping[str, int],
        new_events: int,
        now: datetime,
        owner: str | None,
        head: Head,
        batches: RowBatches,
    ) -> Sequence[Any] | None:
        """PostgreSQL: one call of the schema's `app_agent_write_step` (migrations.step_function),
        whose plans the server keeps per connection, where a statement of data-modifying
        CTEs was planned afresh at every step (nothing is prepared: transaction poolers do
        not keep prepared statements). The run's changes and the rows travel as JSON, each
        row encoded once (`_row_json`). A change the function does not cover (a column it
        does not set), or a role that may not call it (`step_function`), returns None,
        nothing written: the caller writes it the usual way."""
        if not (
            self.step_function
            and set_values.keys() <= STEP_FUNCTION_SETS
            and added.keys() <= _FUNCTION_ADDS
        ):
            return None
        rows: dict[str, list[str]] = {table: [] for table in _FUNCTION_ROWS}
        for table, table_rows in batches:
            encode = self._row_json[table]
            rows[table] += [encode(row) for row in table_rows]
        cursor.execute(
            self._step_call,
            (
                run_key,
                owner,
                self.time_param(now),
                head.event_seq,
                head.steps_count,
                head.hash,
                self._set_json(set_values),
                added.get("steps_count", 0),
                added.get("tool_calls_count", 0),
                added.get("prompt_tokens", 0),
                added.get("completion_tokens", 0),
                new_events,
                *(
                    f"[{','.join(rows[table])}]" if rows[table] else None
                    for table in _FUNCTION_ROWS
                ),
            ),
        )
        return cursor.fetchone()  # type: ignore[no-any-return]

    def _set_json(self, set_values: Mapping[str, Any]) -> str:
        """The run's new column values, as `app_agent_write_step` reads them (`p_set`)."""
        values = {}
        times = self._run_times
        for name, value in set_values.items():
            if name in times:
                values[name] = None if value is None else _as_utc(value).isoformat()
            else:
                values[name] = text_of(value)
        return _DUMPS(values)

    def _write_step_sqlite(
        self,
        cursor: Any,
        shape: _RunUpdate,
        params: dict[str, Any],
        batches: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
    ) -> bool:
        """SQLite has no data-modifying CTE; a step's writes are one INSERT into a view of
        this connection whose INSTEAD OF trigger checks the head and the lease, updates the
        run and inserts the rows: one statement, in autocommit its own transaction, all of
        it or none (every error the schema raises aborts the statement: no trigger of ours
        uses RAISE(FAIL), no constraint an ON CONFLICT clause). The driver releases the GIL
        around each statement it runs: held by one writer at a time, the write lock waits
        for this thread to get it back after each one, which threads busy with their own
        steps delay; one statement instead of six (BEGIN, the run update, its row, three
        inserts, COMMIT) is one wait. Whether it wrote: False when the trigger wrote
        nothing (not at that head, or no longer held)."""
        statement = self._step_statement(shape, tuple((t, len(rows)) for t, rows in batches))
        values = [params[name] for name in statement.run_names]
        values += [value for _, rows in batches for row in rows for value in row]
        try:
            try:
                cursor.execute(statement.insert, values)
            except sqlite3.OperationalError as exc:
                if statement.view not in str(exc):
                    raise
                for sql in statement.create:  # a connection's first step of this shape
                    cursor.execute(sql)
                cursor.execute(statement.insert, values)
        except sqlite3.IntegrityError as exc:
            if _NOT_AT_HEAD not in str(exc):
                raise
            return False
        return True

    def _step_statement(
        self, shape: _RunUpdate, rows: tuple[tuple[str, int], ...]
    ) -> _StepStatement:
        """SQLite: the view and trigger of a step's shape (`_write_step_sqlite`), built once;
        the same names on every connection of this process, each creating them (TEMP) for
        itself at its first step of the shape."""
        key = (shape.key, rows)
        found = self._step_statements.get(key)
        if found is not None:
            return found
        columns: list[str] = []

        def new(name: str) -> str:
            if name not in columns:
                columns.append(name)
            return f"NEW.{name}"

        assignments, conditions = self._run_update_parts(*shape.key, p=new)
        run_names = tuple(columns)
        inserts = []
        value_names: list[str] = []
        for table, count in rows:
            table_columns = ROW_COLUMNS[table]
            for _ in range(count):
                marks = []
                for _column in table_columns:
                    value_names.append(f"v{len(value_names)}")
                    marks.append(new(value_names[-1]))
                inserts.append(
                    f"INSERT INTO {table} ({', '.join(table_columns)}) VALUES ({', '.join(marks)});"
                )
        # changes(), in a trigger: the rows its last statement changed.
        body = (
            f"UPDATE app_agent_runs SET {', '.join(assignments)} "
            f"WHERE {' AND '.join(conditions)}; "
            f"SELECT RAISE(ABORT, '{_NOT_AT_HEAD}') WHERE changes() = 0; "
            f"{' '.join(inserts)}"
        )
        # Named after what it does: a connection that already has it created it the same.
        view = f"agent_step_write_{hashlib.sha256(body.encode()).hexdigest()[:16]}"
        create = (
            f"CREATE TEMP VIEW IF NOT EXISTS {view} AS SELECT "
            + ", ".join(f"NULL AS {column}" for column in columns),
            f"CREATE TEMP TRIGGER IF NOT EXISTS {view}_rows INSTEAD OF INSERT ON {view} "
            f"BEGIN {body} END",
        )
        placeholders = self.codec.marks(len(columns))
        insert = f"INSERT INTO {view} ({', '.join(columns)}) VALUES ({placeholders})"
        found = self._step_statements[key] = _StepStatement(view, insert, create, run_names)
        return found

    def run_of(self, row: Sequence[Any]) -> Run:
        """The run from its row as the driver gives it: only ids and times need decoding,
        and most of them (its id, objective, creation and start) are the same at every step
        of a run, so decoded values are remembered (a bounded memo of immutable values)."""
        values = list(row[: len(RUN_COLUMNS)])
        memo = self._decoded
        if len(memo) > _DECODED_MAX:
            memo.clear()
        for indexes, decode in self._run_decoders:
            for index in indexes:
                raw = values[index]
                if raw is not None:
                    value = memo.get(raw)
                    if value is None:
                        value = memo[raw] = decode(raw)
                    values[index] = value
        return Run.model_validate(dict(zip(RUN_COLUMNS, values, strict=True)))

    def _run_update(
        self,
        names: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], bool],
        claim: bool,
        *,
        guarded: bool = False,
    ) -> _RunUpdate:
        """The statement for this shape of change (the column names set, added to and set
        if still NULL, whether it is fenced, whether it is a claim, whether it is guarded by
        the expected head), built once."""
        key = (*names, claim, guarded)
        shape = self._run_updates.get(key)
        if shape is None:
            shape = self._run_updates[key] = self._build_run_update(*names, claim, guarded)
        return shape

    @staticmethod
    def _run_update_parts(
        set_names: tuple[str, ...],
        add_names: tuple[str, ...],
        first_names: tuple[str, ...],
        fenced: bool,
        only_if_claimable: bool,
        guarded: bool,
        p: Callable[[str], str],
    ) -> tuple[list[str], list[str]]:
        """The assignments and conditions of a run update, each parameter written by `p`."""
        for name in (*set_names, *add_names, *first_names):
            runs.c[name]  # an unknown column is a KeyError (a bug)
        assignments = [f"{name} = {p('set_' + name)}" for name in set_names]
        assignments += [f"{name} = {name} + {p('add_' + name)}" for name in add_names]
        assignments += [f"{name} = COALESCE({name}, {p('first_' + name)})" for name in first_names]
        assignments += [f"event_seq = event_seq + {p('p_events')}", f"updated_at = {p('p_now')}"]
        conditions = [f"id = {p('p_run_id')}"]
        if fenced:
            conditions.append(f"lease_owner = {p('p_owner')}")
        if only_if_claimable:
            conditions.append(
                f"(status = {p('p_queued')} OR (status = {p('p_running')} "
                f"AND lease_expires_at < {p('p_now')}))"
            )
        if guarded:  # at the head the rows were built on (write_step_at_once)
            conditions += [
                f"event_seq = {p('g_seq')}",
                f"steps_count = {p('g_steps')}",
                f"{_hash_at(p('g_seq'))} = {p('g_hash')}",
            ]
        return assignments, conditions

    def _build_run_update(
        self,
        set_names: tuple[str, ...],
        add_names: tuple[str, ...],
        first_names: tuple[str, ...],
        fenced: bool,
        only_if_claimable: bool,
        guarded: bool = False,
    ) -> _RunUpdate:
        convert = self.codec.converter
        assignments, conditions = self._run_update_parts(
            set_names,
            add_names,
            first_names,
            fenced,
            only_if_claimable,
            guarded,
            self.codec.placeholder,
        )
        p = self.codec.placeholder
        returned = ", ".join(RUN_COLUMNS)
        if not guarded:  # and the hash of the event before the new ones
            returned += f", {_hash_at('app_agent_runs.event_seq - ' + p('p_events'))}"
        sql = (
            f"UPDATE app_agent_runs SET {', '.join(assignments)} "
            f"WHERE {' AND '.join(conditions)} RETURNING {returned}"
        )
        return _RunUpdate(
            sql=sql,
            key=(set_names, add_names, first_names, fenced, only_if_claimable, guarded),
            set_params=tuple(
                ("set_" + name, name, convert(self._run_kinds[name])) for name in set_names
            ),
            add_params=tuple(("add_" + name, name) for name in add_names),
            first_params=tuple(
                ("first_" + name, name, convert(self._run_kinds[name])) for name in first_names
            ),
        )

    def hash_at(self, cursor: Any, run_key: str, seq: int) -> str | None:
        """The hash of the run's event number `seq` (of its checkpoint once compacted)."""
        p = self.codec.placeholder
        cursor.execute(
            f"SELECT {_hash_at(p('p_seq'), p('p_run_id'))}",
            {"p_run_id": self.codec.uuid(run_key), "p_seq": seq},
        )
        row = cursor.fetchone()
        return row[0] if row else None

    def objective(self, cursor: Any, objective_id: str) -> Objective | None:
        """The objective, read by its id."""
        p = self.codec.placeholder
        cursor.execute(
            f"SELECT {', '.join(OBJECTIVE_COLUMNS)} FROM {objectives.name} WHERE id = {p('p_id')}",
            {"p_id": self.codec.uuid(objective_id)},
        )
        row = cursor.fetchone()
        if row is None:
            return None
        decoders = self._objective_decoders
        return Objective.model_validate(
            {name: decode(value) for name, decode, value in zip(*decoders, row, strict=True)}
        )

    def previous_run(self, cursor: Any, run: Run) -> Run | None:
        """The objective's run before `run`, skipped runs left out; none before the first."""
        if run.run_number <= 1:
            return None
        p = self.codec.placeholder
        cursor.execute(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM app_agent_runs "
            f"WHERE objective_id = {p('p_objective')} AND run_number < {p('p_number')} "
            f"AND status <> {p('p_skipped')} ORDER BY run_number DESC LIMIT 1",
            {
                "p_objective": self.codec.uuid(run.objective_id),
                "p_number": run.run_number,
                "p_skipped": RunStatus.SKIPPED.value,
            },
        )
        row = cursor.fetchone()
        return self.run_of(row) if row is not None else None

    def queued_run_keys(self, cursor: Any, limit: int) -> list[str]:
        """The ids of up to `limit` queued runs, oldest first; on PostgreSQL their rows are
        locked, skipping those another worker's claim holds (FOR UPDATE SKIP LOCKED)."""
        p = self.codec.placeholder
        sql = (
            f"SELECT id FROM app_agent_runs WHERE status = {p('p_queued')} "
            f"ORDER BY created_at, id LIMIT {p('p_limit')}"
        )
        if not self.codec.sqlite:
            sql += " FOR UPDATE SKIP LOCKED"
        cursor.execute(sql, {"p_queued": RunStatus.QUEUED.value, "p_limit": limit})
        return [_uuid_result(row[0]) for row in cursor.fetchall()]

    def run_exists(self, cursor: Any, run_key: str) -> bool:
        sql = f"SELECT 1 FROM app_agent_runs WHERE id = {self.codec.placeholder('p_id')}"
        cursor.execute(sql, {"p_id": self.codec.param(run_key, "uuid")})
        return cursor.fetchone() is not None

    # --- the ledger ---------------------------------------------------------------------------

    def args_hash(self, tool_name: str, args: Any) -> str:
        """`ledger.tool_args_hash` of arguments already JSON (`json_value`), on the one
        canonical encoder rather than one built per call."""
        covered = self.canonical({"args": args, "tool": tool_name})
        return hashlib.sha256(covered.encode("utf-8")).hexdigest()

    def chain(
        self,
        run_key: str,
        new_events: Sequence[NewEvent],
        *,
        first_seq: int,
        prev_hash: str,
        now: datetime,
    ) -> list[ChainedEvent]:
        """The new events numbered from `first_seq`, each hashed over the one before it.

        The hash is `ledger.event_hash`: SHA-256 of the canonical JSON of the event. That
        JSON is composed here around the payload's canonical JSON, encoded once and stored
        as it is; tests prove it equals `ledger.event_hash` for any payload."""
        created = encode_basestring(ledger_time(now))
        run_json = encode_basestring(run_key)
        chained: list[ChainedEvent] = []
        for seq, new in enumerate(new_events, start=first_seq):
            data = json_value(new.data)
            data_json = self.canonical(data)
            covered = (
                f'{{"created_at":{created},"data":{data_json},'
                f'"event_type":{encode_basestring(new.event_type)},'
                f'"prev_hash":{encode_basestring(prev_hash)},"run_id":{run_json},"seq":{seq}}}'
            )
            digest = hashlib.sha256(covered.encode("utf-8")).hexdigest()
            chained.append(
                ChainedEvent(run_key, seq, new.event_type, data, data_json, now, prev_hash, digest)
            )
            prev_hash = digest
        return chained

    def event_rows(self, chained: Sequence[ChainedEvent]) -> list[tuple[Any, ...]]:
        """The events as insert parameters (EVENT_COLUMNS)."""
        if not chained:
            return []
        run_param = self.codec.uuid(chained[0].run_id)
        time_param = self.time_param(chained[0].created_at)
        return [
            (run_param, e.seq, e.event_type, e.data_json, time_param, e.prev_hash, e.hash)
            for e in chained
        ]

    # --- inserts and updates --------------------------------------------------------------

    def insert(self, cursor: Any, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows of `table`, each a tuple in the order of its ROW_COLUMNS."""
        if not rows:
            return
        sql = self._insert_sql(((table, 1),))
        if len(rows) == 1:
            cursor.execute(sql, rows[0])
        else:
            cursor.executemany(sql, rows)

    def insert_rows(
        self, cursor: Any, batches: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]
    ) -> None:
        """Insert the rows of several tables: on PostgreSQL in one statement (data-modifying
        CTEs; foreign keys are checked at its end), on SQLite, which has no such statement,
        one statement per table."""
        batches = [(table, rows) for table, rows in batches if rows]
        if self.codec.sqlite or len(batches) == 1:
            for table, rows in batches:
                self.insert(cursor, table, rows)
            return
        sql = self._insert_sql(tuple((table, len(rows)) for table, rows in batches))
        cursor.execute(sql, [value for _, rows in batches for row in rows for value in row])

    def _insert_sql(self, shape: tuple[tuple[str, int], ...]) -> str:
        """INSERT of (table, row count) pairs: one table's rows, or on PostgreSQL
        WITH t0 AS (INSERT ...), t1 AS (INSERT ...) INSERT ...: one statement."""
        sql = self._inserts.get(shape)
        if sql is None:
            inserts = []
            for table, count in shape:
                columns = ROW_COLUMNS[table]
                row = f"({self.codec.marks(len(columns))})"
                values = row if len(shape) == 1 else ", ".join([row] * count)
                inserts.append(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}")
            ctes = ", ".join(f"t{index} AS ({sql})" for index, sql in enumerate(inserts[:-1]))
            sql = self._inserts[shape] = f"WITH {ctes} {inserts[-1]}" if ctes else inserts[0]
        return sql

    def update_by_id(
        self, cursor: Any, table: sa.Table, key: str, values: Mapping[str, Any]
    ) -> None:
        sql, converters = self._update_sql(table, tuple(values))
        params = {name: convert(values[name]) for name, convert in converters}
        params["p_id"] = self.codec.uuid(key)
        cursor.execute(sql, params)

    def _update_sql(
        self, table: sa.Table, names: tuple[str, ...]
    ) -> tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
        found = self._updates.get((table.name, names))
        if found is None:
            converters = tuple((name, self.codec.converter(_kind(table.c[name]))) for name in names)
            assignments = ", ".join(f"{name} = {self.codec.placeholder(name)}" for name in names)
            sql = (
                f"UPDATE {table.name} SET {assignments} WHERE id = {self.codec.placeholder('p_id')}"
            )
            found = self._updates[(table.name, names)] = (sql, converters)
        return found
