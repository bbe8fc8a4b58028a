"""The writes every step makes, as named SQL run on the driver connection.

A step writes a handful of rows; through SQLAlchemy's execution machinery each statement
costs several times what the database itself takes. These few statements are therefore
kept here as plain SQL, built once per shape from the declared tables, and executed on the
DBAPI connection inside the Store's own transaction. Values are always bound parameters.
The codec below stores exactly what SQLAlchemy's column types store (tests read every row
back through SQLAlchemy on both backends), so the rest of the Store is unaware of it.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa

from agent_core.store.schema import (
    JSONDocument,
    UTCDateTime,
    approvals,
    events,
    ledger_checkpoints,
    runs,
    steps,
    tool_calls,
)

RUN_COLUMNS = tuple(column.name for column in runs.c)


def _same(value: Any) -> Any:
    return value


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _json_param(value: Any) -> Any:
    if value is None:
        return None
    return "{}" if value == {} else json.dumps(value)  # no arguments: the common case


def _json_result(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


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
    return str(uuid.UUID(hex=value)) if isinstance(value, str) else str(value)


def _pg_time_param(value: Any) -> Any:
    return None if value is None else value.astimezone(UTC)


def _pg_time_result(value: Any) -> Any:
    return None if value is None else value.astimezone(UTC)


class Codec:
    """Python values to driver parameters and back, per backend and column kind."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self._params: dict[str, Callable[[Any], Any]] = {
            "uuid": _sqlite_uuid_param if self.sqlite else _same,
            "time": _sqlite_time_param if self.sqlite else _pg_time_param,
            "json": _json_param,
            "plain": _enum_value,
        }
        self._results: dict[str, Callable[[Any], Any]] = {
            "uuid": _uuid_result,
            "time": _sqlite_time_result if self.sqlite else _pg_time_result,
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


def _kind(column: sa.Column[Any]) -> str:
    if isinstance(column.type, sa.Uuid):
        return "uuid"
    if isinstance(column.type, UTCDateTime):
        return "time"
    if isinstance(column.type, JSONDocument):
        return "json"
    return "plain"


class HotPath:
    """The step writes for one backend: run update (with the previous event's hash in its
    RETURNING), and inserts of events, steps, tool calls and approvals."""

    def __init__(self, dialect: str) -> None:
        self.codec = Codec(dialect)
        self._run_kinds = {column.name: _kind(column) for column in runs.c}
        self._run_decoders = tuple(
            (column.name, self.codec.decoder(_kind(column))) for column in runs.c
        )

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
    ) -> tuple[dict[str, Any], str | None] | None:
        """Apply the change; returns the run row and the hash of the event before the new
        ones, or None when no row matched (the run is gone, or the condition failed)."""
        first_values = first_values or {}
        sql = self._run_update_sql(
            tuple(sorted(set_values)),
            tuple(sorted(added)),
            tuple(sorted(first_values)),
            owner is not None,
            only_if_claimable,
        )
        codec = self.codec
        params: dict[str, Any] = {
            "p_run_id": codec.param(run_key, "uuid"),
            "p_owner": owner,
            "p_now": codec.param(now, "time"),
            "p_events": new_events,
            "p_running": "running",
            "p_queued": "queued",
        }
        for name, value in set_values.items():
            params[f"set_{name}"] = codec.param(value, self._run_kinds[name])
        for name, amount in added.items():
            params[f"add_{name}"] = amount
        for name, value in first_values.items():
            params[f"first_{name}"] = codec.param(value, self._run_kinds[name])
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        decoded = {
            name: decode(value)
            for (name, decode), value in zip(self._run_decoders, row, strict=False)
        }
        return decoded, row[-1]

    def insert(self, cursor: Any, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
        sql, converters = self._insert_sql(table.name, tuple(rows[0]))
        params = [{name: convert(row[name]) for name, convert in converters} for row in rows]
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)

    def insert_rows(
        self, cursor: Any, batches: Sequence[tuple[sa.Table, Sequence[Mapping[str, Any]]]]
    ) -> None:
        """Insert the rows of several tables (each table's rows with the same columns): on
        PostgreSQL in one statement (data-modifying CTEs; foreign keys are checked at its
        end), on SQLite, which has no such statement, one statement per table."""
        batches = [(table, rows) for table, rows in batches if rows]
        if self.codec.sqlite or len(batches) == 1:
            for table, rows in batches:
                self.insert(cursor, table, rows)
            return
        shape = tuple((table.name, tuple(rows[0]), len(rows)) for table, rows in batches)
        sql, converters = self._combined_insert_sql(shape)
        params: dict[str, Any] = {}
        for index, ((_, rows), table_converters) in enumerate(
            zip(batches, converters, strict=True)
        ):
            for number, row in enumerate(rows):
                prefix = f"t{index}r{number}_"
                for name, convert in table_converters:
                    params[prefix + name] = convert(row[name])
        cursor.execute(sql, params)

    def update_by_id(
        self, cursor: Any, table: sa.Table, key: str, values: Mapping[str, Any]
    ) -> None:
        sql, converters = self._update_sql(table.name, tuple(values))
        params = {name: convert(values[name]) for name, convert in converters}
        params["p_id"] = self.codec.param(key, "uuid")
        cursor.execute(sql, params)

    def run_exists(self, cursor: Any, run_key: str) -> bool:
        sql = f"SELECT 1 FROM app_agent_runs WHERE id = {self.codec.placeholder('p_id')}"
        cursor.execute(sql, {"p_id": self.codec.param(run_key, "uuid")})
        return cursor.fetchone() is not None

    def _converters(
        self, table_name: str, names: tuple[str, ...]
    ) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
        """Each column's parameter converter; an unknown column is a KeyError (a bug)."""
        table = _TABLES[table_name]
        return tuple((name, self.codec.converter(_kind(table.c[name]))) for name in names)

    @functools.cache  # noqa: B019 - one HotPath per engine, a handful of shapes each
    def _update_sql(
        self, table_name: str, names: tuple[str, ...]
    ) -> tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
        converters = self._converters(table_name, names)
        assignments = ", ".join(f"{name} = {self.codec.placeholder(name)}" for name in names)
        sql = f"UPDATE {table_name} SET {assignments} WHERE id = {self.codec.placeholder('p_id')}"
        return sql, converters

    @functools.cache  # noqa: B019 - one HotPath per engine, a handful of shapes each
    def _insert_sql(
        self, table_name: str, names: tuple[str, ...]
    ) -> tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
        converters = self._converters(table_name, names)
        placeholders = ", ".join(self.codec.placeholder(name) for name in names)
        sql = f"INSERT INTO {table_name} ({', '.join(names)}) VALUES ({placeholders})"
        return sql, converters

    @functools.cache  # noqa: B019 - one HotPath per engine, a handful of shapes each
    def _combined_insert_sql(
        self, shape: tuple[tuple[str, tuple[str, ...], int], ...]
    ) -> tuple[str, tuple[tuple[tuple[str, Callable[[Any], Any]], ...], ...]]:
        """WITH t0 AS (INSERT ...), t1 AS (INSERT ...) INSERT ...: one statement."""
        inserts = []
        converters = []
        for index, (table_name, names, count) in enumerate(shape):
            converters.append(self._converters(table_name, names))
            values = ", ".join(
                "(" + ", ".join(f"%(t{index}r{number}_{name})s" for name in names) + ")"
                for number in range(count)
            )
            inserts.append(f"INSERT INTO {table_name} ({', '.join(names)}) VALUES {values}")
        ctes = ", ".join(f"t{index} AS ({sql})" for index, sql in enumerate(inserts[:-1]))
        return f"WITH {ctes} {inserts[-1]}", tuple(converters)

    @functools.cache  # noqa: B019 - one HotPath per engine, a handful of shapes each
    def _run_update_sql(
        self,
        set_names: tuple[str, ...],
        add_names: tuple[str, ...],
        first_names: tuple[str, ...],
        fenced: bool,
        only_if_claimable: bool,
    ) -> str:
        p = self.codec.placeholder
        for name in (*set_names, *add_names, *first_names):
            runs.c[name]
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
        before = f"app_agent_runs.event_seq - {p('p_events')}"
        previous_hash = (
            f"COALESCE((SELECT e.hash FROM {events.name} e WHERE e.run_id = app_agent_runs.id "
            f"AND e.seq = {before}), (SELECT c.hash FROM {ledger_checkpoints.name} c "
            f"WHERE c.run_id = app_agent_runs.id AND c.seq = {before}))"
        )
        return (
            f"UPDATE app_agent_runs SET {', '.join(assignments)} "
            f"WHERE {' AND '.join(conditions)} "
            f"RETURNING {', '.join(RUN_COLUMNS)}, {previous_hash}"
        )


_TABLES = {table.name: table for table in (runs, events, steps, tool_calls, approvals)}
