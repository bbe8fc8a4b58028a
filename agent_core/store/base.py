"""What every part of the Store shares: the engine, transactions, the ledger append
primitive, and turning driver errors, ids and rows into the runtime's terms.

The aggregates (objectives.py, runs.py, leases.py, steps.py, approvals.py, notifications.py,
workers.py, event_log.py, reads.py) are classes over `StoreBase`; store.py assembles them
into the one `Store`. Nothing here knows an aggregate's queries, except the run row that
`_write_run` moves with every ledger append.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import URL, Engine, Row, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent_core.errors import LeaseLost, NotFound, StoreUnavailable
from agent_core.models import (
    Approval,
    Event,
    NewEvent,
    Notification,
    Objective,
    Run,
    RunChanges,
    Step,
    ToolCall,
)
from agent_core.render import redact_url
from agent_core.store import migrations
from agent_core.store.engine import (
    WRITE,
    KeptAutocommit,
    SqliteWriteTurns,
    create_engine,
    normalize_database_url,
)
from agent_core.store.hotpath import (
    AT_ONCE_MAX_VALUES,
    HEADS_MAX,
    ChainedEvent,
    Head,
    HotPath,
    RowBatches,
)
from agent_core.store.ledger import GENESIS_HASH
from agent_core.store.schema import events, runs

Clock = Callable[[], datetime]
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Set for the duration of a transaction that prunes events or signs prune checkpoints; the
# PostgreSQL ledger trigger lets only such a transaction delete events or change checkpoints
# (see the initial migration).
PRUNE_SETTING = "app_agent.prune"


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A random (version 4) UUID in canonical form, without uuid.UUID's per-call checks."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class StoreBase:
    """The connection to one database (SQLite or PostgreSQL) and the clock; every aggregate
    of the Store runs its queries through `_transaction` or `_hot_transaction` and appends
    to the ledger through `_write_run`."""

    def __init__(self, engine: Engine, *, clock: Clock = utc_now) -> None:
        self.engine = engine
        self._clock = clock
        self._hot = HotPath(engine.dialect.name)
        self._write_lock = (
            SqliteWriteTurns(engine.url.database) if engine.dialect.name == "sqlite" else None
        )
        # SQLite: the connection every step write uses, kept (under _write_lock, one writer at
        # a time) rather than checked out of the pool and returned at each step.
        self._sqlite_writer: Any = None
        # PostgreSQL: the connection the one-statement writes use first (`_one_statement`).
        self._kept_autocommit = KeptAutocommit(engine) if self._write_lock is None else None
        # Each run's ledger head as this process last wrote it (see `_remember_head`).
        self._heads: dict[str, Head] = {}

    @classmethod
    def open(cls, database_url: str, *, clock: Clock = utc_now, check_schema: bool = True) -> Self:
        """Connect to `database_url`; unless told otherwise, insist the schema is current."""
        url = make_url(normalize_database_url(database_url))
        if url.get_backend_name() == "sqlite":
            folder = _missing_sqlite_folder(url)
            if folder is not None:
                raise StoreUnavailable(
                    f"the folder {folder} named by DATABASE_URL does not exist: create it, or "
                    "point DATABASE_URL at a file in an existing folder"
                )
            if check_schema and not _sqlite_file_exists(url):
                raise StoreUnavailable(
                    f"there is no database file at {url.database}: "
                    "run `.venv/bin/python -m agent_core db upgrade` first"
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
        with self._writer(True):
            writer, self._sqlite_writer = self._sqlite_writer, None
            if writer is not None:
                writer.close()
        if self._write_lock is not None:
            self._write_lock.close()
        if self._kept_autocommit is not None:
            self._kept_autocommit.close()
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
                "run `.venv/bin/python -m agent_core db upgrade` first"
            )
        if migrations.is_known_revision(current):
            raise StoreUnavailable(
                f"the database schema is at revision {current}, older than this version "
                f"({head}): run `.venv/bin/python -m agent_core db upgrade`"
            )
        raise StoreUnavailable(
            f"the database schema is at revision {current}, which this version of agent "
            "runtime does not know: upgrade agent runtime"
        )

    # --- transactions and the ledger append primitive -------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sa.Connection]:
        """One transaction; database errors that mean "unreachable" become one sentence."""
        try:
            with self._writer(write), self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE: True})
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise  # a constraint at work (a taken slot, a duplicate): the caller decides
        except DBAPIError as exc:
            raise _unavailable(exc, self.engine) from exc
        except self.engine.dialect.loaded_dbapi.Error as exc:  # raised on the driver cursor
            if isinstance(exc, self.engine.dialect.loaded_dbapi.IntegrityError):
                raise
            raise _unavailable(exc, self.engine) from exc

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A read-only transaction, for reports that build their own queries on the
        declared tables (agent_core.analytics); an unreachable database is StoreUnavailable."""
        with self._transaction(write=False) as conn:
            yield conn

    @contextmanager
    def _hot_transaction(self, *, one_statement: bool = False) -> Iterator[Any]:
        """A write transaction on a DBAPI connection, for the per-step writes: the same
        transaction semantics as `_transaction`, without its per-statement cost. On SQLite
        it is the one kept writer connection (writes take turns on the write lock anyway).
        On PostgreSQL the statements go in pipeline mode: only a statement whose result is
        read (the run update's RETURNING) waits for the server; the rest travel with the
        COMMIT: two round trips instead of one per statement. (A step on a known ledger head
        takes one: `_one_statement`.) With `one_statement`, SQLite: no BEGIN and COMMIT,
        for statements that are each a transaction by itself, the write lock still held
        across them."""
        dbapi = self.engine.dialect.loaded_dbapi
        with self._writer(True):
            sqlite = self._write_lock is not None
            try:
                raw = self._sqlite_writer
                if raw is None:
                    raw = self.engine.raw_connection()
            except (DBAPIError, dbapi.Error) as exc:
                raise _unavailable(exc, self.engine) from exc
            keep, failed = sqlite, False
            try:
                yield from _hot_statements(
                    raw.driver_connection, sqlite=sqlite, begin=not one_statement
                )
            except dbapi.IntegrityError:
                raise
            except dbapi.Error as exc:
                keep, failed = False, True  # a connection that failed is not kept
                raise _unavailable(exc, self.engine) from exc
            finally:
                self._sqlite_writer = raw if keep else None
                if not keep:
                    _give_back(raw, failed=failed)

    @contextmanager
    def _hot_reads(self) -> Iterator[Any]:
        """A DBAPI cursor for a few plain-SQL reads on the hot path (HotPath's), each a
        consistent read by itself; without SQLAlchemy's execution machinery, which costs a
        run start more CPU than the reads themselves. An unreachable database is
        StoreUnavailable."""
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            raw = self.engine.raw_connection()
        except (DBAPIError, dbapi.Error) as exc:
            raise _unavailable(exc, self.engine) from exc
        failed = False
        try:
            yield raw.driver_connection.cursor()
        except dbapi.Error as exc:
            failed = True
            raise _unavailable(exc, self.engine) from exc
        finally:
            _give_back(raw, failed=failed)

    @contextmanager
    def _one_statement(self) -> Iterator[Any]:
        """PostgreSQL: a cursor in autocommit, for one statement that is a transaction by
        itself (a one-trip write: `_write_at_once`): its COMMIT travels with it. On the
        kept connection (KeptAutocommit) unless another thread is using it."""
        dbapi = self.engine.dialect.loaded_dbapi
        assert self._kept_autocommit is not None
        try:
            kept = self._kept_autocommit.take()
            raw = kept if kept is not None else self.engine.raw_connection()
        except (DBAPIError, dbapi.Error) as exc:
            raise _unavailable(exc, self.engine) from exc
        driver = raw.driver_connection
        failed = False
        try:
            if kept is None:
                driver.autocommit = True
            with driver.cursor() as cursor:
                yield cursor
        except (dbapi.IntegrityError, dbapi.DataError):
            raise  # a constraint, or a value refused (`_write_at_once` falls back)
        except dbapi.Error as exc:
            if getattr(exc, "sqlstate", None) in STEP_FUNCTION_REFUSED:
                raise  # the connection is fine; `_write_at_once` falls back
            failed = True
            raise _unavailable(exc, self.engine) from exc
        finally:
            if kept is not None:
                self._kept_autocommit.give_back(kept, failed=failed)
            else:
                try:
                    driver.autocommit = False
                except dbapi.Error:
                    failed = True
                _give_back(raw, failed=failed)

    def _writer(self, write: bool) -> AbstractContextManager[object]:
        """SQLite allows one writer at a time, and a writer that finds the lock taken sleeps
        in growing steps (milliseconds) before trying again. Threads of this process
        therefore queue for the write lock here, on a Python lock, which is handed over at
        once; processes on a lock file beside the database (SqliteWriteTurns)."""
        return self._write_lock if write and self._write_lock is not None else nullcontext()

    def _run_row(self, conn: sa.Connection, key: str, shown_id: str) -> Row[Any]:
        row = conn.execute(runs.select().where(runs.c.id == key)).one_or_none()
        if row is None:
            raise NotFound(f"no run has id {shown_id}")
        return row

    def _run_changes(self, changes: RunChanges) -> tuple[dict[str, Any], dict[str, int]]:
        """The column values (set, and added to) that a RunChanges stands for."""
        values: dict[str, Any] = {}
        for name in ("status", "stop_reason", "summary", "error", "active_ms"):
            value = getattr(changes, name)
            if value is not None:
                values[name] = value
        if changes.previous_run_id is not None:  # as the database gives it back
            values["previous_run_id"] = parse_id(changes.previous_run_id, "run")
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

    def _run_write(
        self,
        changes: RunChanges | None,
        set_values: Mapping[str, Any] | None,
        add: Mapping[str, int] | None,
    ) -> tuple[dict[str, Any], dict[str, int], str | None]:
        """The columns a run write sets, the counters it adds to (none of zero) and the
        lease owner that fences it."""
        values: dict[str, Any] = dict(set_values) if set_values else {}
        added: dict[str, int] = dict(add) if add else {}
        owner = None
        if changes is not None:
            more_values, more_added = self._run_changes(changes)
            values.update(more_values)
            for name, amount in more_added.items():
                added[name] = added.get(name, 0) + amount
            owner = changes.owner
        return values, {name: amount for name, amount in added.items() if amount}, owner

    def _remember_head(self, run: Run, last_hash: str | None) -> None:
        """Note the run's ledger head as this write leaves it (`last_hash`: its last new
        event's), and the run, for the next write of it by this process, whose rows are
        then built before it (`_write_at_once`). It is only a guess, which that write has
        the database check: a transaction that rolled back, or another process that wrote
        to the run since, sends it the usual way. A write without events (None) is
        forgotten instead: rolled back, it would leave the head as it was, and the run
        remembered wrong."""
        heads = self._heads
        if last_hash is None:
            heads.pop(run.id, None)
            return
        if len(heads) >= HEADS_MAX:
            heads.clear()
        heads[run.id] = Head(run.event_seq, run.steps_count, last_hash, run)

    def _write_at_once(
        self,
        key: str,
        head: Head,
        *,
        changes: RunChanges | None,
        add: Mapping[str, int] | None,
        new_events: Sequence[NewEvent],
        now: datetime,
        rows: Callable[[list[ChainedEvent]], RowBatches] | None = None,
    ) -> Run | None:
        """A run write chained to `head`, the ledger head this process last wrote, its rows
        built before it: the new events (chained here), or what `rows` makes of them (a
        step's rows, its events among them). On PostgreSQL one statement; on SQLite one,
        then the run read back (HotPath.write_step_at_once); the write lock is held for the
        SQL alone. None, with nothing written, when the run is no longer at that head or no
        longer held, or when the write binds more than AT_ONCE_MAX_VALUES values: the caller
        then writes the usual way (`_write_run`), which finds out why (LeaseLost,
        NotFound)."""
        values, added, owner = self._run_write(changes, None, add)
        hot = self._hot
        written = hot.chain(
            key, new_events, first_seq=head.event_seq + 1, prev_hash=head.hash, now=now
        )
        batches = rows(written) if rows else [(events.name, hot.event_rows(written))]
        if sum(len(row) for _, table_rows in batches for row in table_rows) > AT_ONCE_MAX_VALUES:
            return None
        writing = (
            self._one_statement()
            if self._write_lock is None
            else self._hot_transaction(one_statement=True)
        )
        try:
            with writing as cursor:
                run = hot.write_step_at_once(
                    cursor,
                    run_key=key,
                    set_values=values,
                    added=added,
                    new_events=len(new_events),
                    now=now,
                    owner=owner,
                    head=head,
                    batches=batches,
                )
        except self.engine.dialect.loaded_dbapi.DataError:
            # PostgreSQL: a value refused (too long for its column...); the statement wrote
            # nothing. The usual path says what is wrong: LeaseLost first, if it is lost.
            return None
        except self.engine.dialect.loaded_dbapi.Error as exc:
            if getattr(exc, "sqlstate", None) not in STEP_FUNCTION_REFUSED:
                raise
            # PostgreSQL: this role may not execute the step function (it does not own the
            # schema), or the function is missing: this Store's writes take the usual path.
            hot.step_function = False
            return None
        if run is None:
            return None
        self._remember_head(run, written[-1].hash if written else None)
        return run

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
        events_written_by_caller: bool = False,
        now: datetime | None = None,
    ) -> tuple[Run | None, list[ChainedEvent]]:
        """Change the run and append `new_events` to its ledger, chained to the event before
        them (found by the same statement). Returns the updated run and the events.

        The run changes come from `changes` (whose `owner` fences the write: LeaseLost when
        that worker no longer holds the run) and from `set_values` / `add` (columns set, and
        counters increased). With `only_if_claimable` the write happens only if the run is
        queued or its lease lapsed, and the run is None otherwise. With
        `events_written_by_caller` the chained events are returned, not inserted: the caller
        inserts them in the same transaction, with its own rows (`HotPath.insert_rows`), at
        `now` (the caller's time, which the events carry). This is the hot path of every
        step: see hotpath.py.
        """
        values, added, owner = self._run_write(changes, set_values, add)
        now = now or self.now()
        updated = self._hot.update_run(
            cursor,
            run_key=run_key,
            set_values=values,
            added=added,
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
        run, previous_hash = updated
        if not new_events:
            self._remember_head(run, None)
            return run, []
        first_seq = run.event_seq - len(new_events) + 1
        if previous_hash is None and first_seq > 1:
            # PostgreSQL: an update that waited for another transaction's append to the run
            # sees the run as that one left it, but its RETURNING reads events as they were
            # when it started, without the appended one: read the hash again, now.
            previous_hash = self._hot.hash_at(cursor, run_key, first_seq - 1)
        written = self._hot.chain(
            run_key,
            new_events,
            first_seq=first_seq,
            prev_hash=previous_hash or GENESIS_HASH,
            now=now,
        )
        self._remember_head(run, written[-1].hash)
        if not events_written_by_caller:
            self._hot.insert(cursor, events.name, self._hot.event_rows(written))
        return run, written


# PostgreSQL errors of a one-call step write (`_write_at_once`) after which the write takes
# the usual path: the step function is not this role's to execute (42501), or is missing.
STEP_FUNCTION_REFUSED = frozenset({"42501", "42883"})


def _give_back(raw: Any, *, failed: bool) -> None:
    """Return a pooled connection; one that failed is discarded instead, without the pool's
    reset (on a dead connection, that reset would log a traceback)."""
    if failed:
        raw.invalidate()
    else:
        raw.close()


def _hot_statements(driver: Any, *, sqlite: bool, begin: bool = True) -> Iterator[Any]:
    """The cursor of one transaction on `driver`: committed when the caller's block ends,
    rolled back when it raises. SQLite without `begin`: each statement is its own."""
    try:
        if sqlite and not begin:
            yield driver.cursor()
        elif sqlite:
            cursor = driver.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            driver.commit()
        else:
            # COMMIT is queued like the statements before it: leaving the pipeline sends its
            # one Sync and reads every result (an error in any of them, COMMIT's included,
            # is raised there). connection.commit() would sync once more before that.
            with driver.pipeline():
                cursor = driver.cursor()
                yield cursor
                cursor.execute("COMMIT")
    except BaseException:
        if begin or driver.in_transaction:
            driver.rollback()
        raise


def driver_cursor(conn: sa.Connection) -> Any:
    """A cursor of the DBAPI connection under `conn`, inside its transaction."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def parse_id(value: str, kind: str) -> str:
    """`value` as a canonical id; one already canonical (what the store hands out) is
    recognised without building a UUID."""
    if isinstance(value, str) and _CANONICAL_ID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise NotFound(f"{value!r} is not a valid {kind} id") from None


def _missing_sqlite_folder(url: URL) -> Path | None:
    """The folder a SQLite file of `url` would be in, when it does not exist (SQLite then
    says only "unable to open database file")."""
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    folder = Path(database).expanduser().parent
    return None if folder.is_dir() else folder


def _sqlite_file_exists(url: URL) -> bool:
    database = url.database or ""
    return database == ":memory:" or database.startswith("file:") or Path(database).exists()


def upsert_builder(dialect: str) -> Any:
    """The dialect's INSERT ... ON CONFLICT (each dialect imported when it is the one in use)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _unavailable(exc: Exception, engine: Engine) -> StoreUnavailable:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(original) if original is not None else str(exc)
    reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    lowered = reason.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return StoreUnavailable(
            "the database has no agent runtime schema yet: "
            "run `.venv/bin/python -m agent_core db upgrade` first"
        )
    where = redact_url(engine.url.render_as_string(hide_password=False))
    return StoreUnavailable(f"cannot use the database at {where}: {reason}")


RecordT = TypeVar("RecordT", bound=BaseModel)


def as_record(model: type[RecordT], row: Row[Any]) -> RecordT:
    return model.model_validate(dict(row._mapping))


def as_objective(row: Row[Any]) -> Objective:
    return as_record(Objective, row)


def as_run(row: Row[Any]) -> Run:
    return as_record(Run, row)


def as_step(row: Row[Any]) -> Step:
    return as_record(Step, row)


def as_tool_call(row: Row[Any]) -> ToolCall:
    return as_record(ToolCall, row)


def as_event(row: Row[Any]) -> Event:
    return as_record(Event, row)


def as_approval(row: Row[Any]) -> Approval:
    return as_record(Approval, row)


def as_notification(row: Row[Any]) -> Notification:
    return as_record(Notification, row)
