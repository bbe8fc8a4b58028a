"""Connecting to SQLite or PostgreSQL. Every difference between the two that is about the
connection (pragmas, BEGIN IMMEDIATE, prepared statements) lives here."""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Any

import sqlalchemy as sa

try:
    import fcntl
except ImportError:  # not POSIX: threads take turns, processes meet the busy timeout
    fcntl = None  # type: ignore[assignment]
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

SQLITE_BUSY_TIMEOUT_S = 30.0
# A pooled PostgreSQL connection idle for longer than this is pinged before use; one used
# moments ago (the previous step of a run) is not, which saves a round trip per step.
PING_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "agent_idle_since"
# How often a writer waiting for another process's turn looks again: far shorter than the
# steps of SQLite's busy handler (up to 100 ms), which idle a worker of several processes.
_TURN_POLL_MIN_S = 0.0002
_TURN_POLL_MAX_S = 0.002
WRITE = "agent_write"  # execution option: this transaction will write (SQLite: BEGIN IMMEDIATE)


class InvalidDatabaseURL(ValueError):
    pass


_URL_HELP = "expected sqlite:///path/to/file.db or postgresql://user:password@host:5432/dbname"


def normalize_database_url(raw: str) -> str:
    """Accept the forms admins paste (Supabase's `postgresql://`, Heroku's `postgres://`) and
    return the URL SQLAlchemy should use: SQLite through pysqlite, PostgreSQL through psycopg 3."""
    text = raw.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text.removeprefix("postgres://")
    try:
        url = make_url(text)
    except ArgumentError:
        raise InvalidDatabaseURL(f"not a database URL; {_URL_HELP}") from None
    except ValueError:  # make_url reads the port as a number
        raise InvalidDatabaseURL(f"the port is not a number; {_URL_HELP}") from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise InvalidDatabaseURL(f"SQLite driver {driver!r} is not supported; {_URL_HELP}")
        if not url.database:
            raise InvalidDatabaseURL(f"a SQLite URL needs a file path; {_URL_HELP}")
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        if driver not in ("", "psycopg"):
            raise InvalidDatabaseURL(
                f"PostgreSQL driver {driver!r} is not supported (psycopg 3 is used); {_URL_HELP}"
            )
        if not url.host and "host" not in url.query:
            raise InvalidDatabaseURL(f"a PostgreSQL URL needs a host; {_URL_HELP}")
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise InvalidDatabaseURL(f"database {backend!r} is not supported; {_URL_HELP}")


def create_engine(database_url: str, **kwargs: Any) -> Engine:
    url = make_url(normalize_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return _postgresql_engine(url, **kwargs)


def _postgresql_engine(url: URL, **kwargs: Any) -> Engine:
    # prepare_threshold=None: never prepare statements, which Supabase's transaction pooler
    # (PgBouncer/Supavisor in transaction mode) cannot route between server connections.
    # LIFO: the connection just returned (warm, recently proven alive) is the next one used.
    engine = sa.create_engine(
        url,
        connect_args={"prepare_threshold": None, "connect_timeout": 10},
        pool_use_lifo=True,
        **kwargs,
    )

    @sa.event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # SQLAlchemy's pool_pre_ping, but only for a connection idle long enough to have been
        # dropped (server restart, idle timeout): DisconnectionError makes the pool replace it.
        if dbapi_connection.closed or dbapi_connection.broken:
            raise sa.exc.DisconnectionError("the pooled connection is closed")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(str(exc)) from exc

    return engine


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    engine = sa.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, **kwargs
    )

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # the dashboard reads while the worker writes
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        # A deferred transaction that later writes can fail with "database is locked" without
        # waiting; taking the write lock up front makes the busy timeout apply instead.
        immediate = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class SqliteWriteTurns:
    """Writers of one SQLite file take turns here before BEGIN IMMEDIATE: threads of this
    process on a Python lock, processes on an advisory lock file beside the database
    (`<file>.write-lock`), looked at again every 2 ms at most, where SQLite's own busy handler
    makes a writer that finds the lock taken sleep in growing steps (1, 2, 5 ... 100 ms),
    which idles a worker of several processes. The kernel drops the file lock of a process
    that dies."""

    def __init__(self, database: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._path = (
            f"{database}.write-lock"
            if database and database != ":memory:" and not database.startswith("file:")
            else None
        )
        self._fd: int | None = None
        self._holding = False  # under _thread_lock: whether this holder has the file lock

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            self._holding = self._take_file_lock()
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if self._holding and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._holding = False
            self._thread_lock.release()

    def _take_file_lock(self) -> bool:
        """Whether the file lock is held: polled in short steps (a blocking flock could not
        give up), for as long as SQLite's busy timeout. A holder stuck past it (a hung
        process) is left to SQLite, whose busy timeout then ends the wait with its error."""
        fd = self._file()
        if fd is None:
            return False
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
        pause = _TURN_POLL_MIN_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, _TURN_POLL_MAX_S)

    def _file(self) -> int | None:
        """The lock file, opened once; None (threads only, SQLite's busy timeout between
        processes) where there is no file lock: no fcntl, or a folder we cannot write to."""
        if self._fd is None and self._path is not None and fcntl is not None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._path = None
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class KeptAutocommit:
    """PostgreSQL: one pooled connection kept out of the pool, in autocommit, for the writes
    that are one statement each (a step on a known ledger head): a checkout and return
    through the pool, with its reset, cost a step more of the client's CPU than sending the
    statement. One thread uses it at a time; a thread that finds it in use is given None,
    and takes a connection from the pool. One left idle for longer than PING_AFTER_IDLE_S is
    pinged before use, as the pool's are, and replaced if the server dropped it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._raw: Any = None
        self._used_at = 0.0

    def take(self) -> Any | None:
        """The kept connection (the pool's proxy) for this thread's statement, or None when
        another thread is using it. Errors of a checkout propagate, as the pool's."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            raw = self._raw
            if raw is not None and time.monotonic() - self._used_at > PING_AFTER_IDLE_S:
                try:  # as the pool's checkout does (see _postgresql_engine)
                    self._engine.dialect.do_ping(raw.driver_connection)
                except self._engine.dialect.loaded_dbapi.Error:
                    self._raw = None
                    raw.invalidate()
                    raw = None
            if raw is None:
                raw = self._engine.raw_connection()
                try:
                    raw.driver_connection.autocommit = True
                except BaseException:
                    raw.invalidate()
                    raise
                self._raw = raw
            return raw
        except BaseException:
            self._lock.release()
            raise

    def give_back(self, raw: Any, *, failed: bool) -> None:
        """Done with what `take` gave; a connection that failed is discarded."""
        if failed:
            self._raw = None
            raw.invalidate()
        else:
            self._used_at = time.monotonic()
        self._lock.release()

    def close(self) -> None:
        with self._lock:
            raw, self._raw = self._raw, None
            if raw is not None:
                self._to_pool(raw)

    def _to_pool(self, raw: Any) -> None:
        """Return the kept connection to the pool as the pool hands them out: not in
        autocommit."""
        try:
            raw.driver_connection.autocommit = False
        except self._engine.dialect.loaded_dbapi.Error:  # dead: not to be reused
            raw.invalidate()
            return
        raw.close()
