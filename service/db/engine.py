"""Engine construction: one place that knows the SQLite and PostgreSQL specifics.

SQLite (WAL): writers queue on ``db/write_lock.py`` (FIFO, woken at once) and then begin with
``BEGIN IMMEDIATE``; read-only work (``read_session``) takes a plain deferred ``BEGIN``, so readers never
queue for the write lock behind the prediction writer.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from service.db.write_lock import WriteLock, lock_path_for, shared_lock

SQLITE_BUSY_TIMEOUT_SECONDS = 30  # a writer waits this long for the write lock before "database is locked"
READONLY = "readonly"  # execution option: this transaction only reads
HOLDS_WRITE_LOCK = "calibserve_holds_write_lock"  # connection-record info key


def sqlite_datetime_text(value: datetime) -> str:
    """What SQLAlchemy's SQLite ``DateTime`` stores, for driver-level inserts: naive UTC text with microseconds.

    The text up to the second is cached (the ship process formats one time per record, and records of one
    second share it): ``isoformat`` of a converted copy cost ~6 µs a record on the bench machine, this ~2."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    second, micro = divmod((aware - _EPOCH) // _MICROSECOND, 1_000_000)
    prefix = _SECOND_TEXT.get(second)
    if prefix is None:
        if len(_SECOND_TEXT) >= 256:
            _SECOND_TEXT.clear()
        prefix = _SECOND_TEXT[second] = (_EPOCH + timedelta(seconds=second)).replace(tzinfo=None).isoformat(sep=" ")
    return f"{prefix}.{micro:06d}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SECOND_TEXT: dict[int, str] = {}


def normalise_url(url: str) -> str:
    """``postgresql://`` → psycopg 3 driver (the one we install); everything else unchanged."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, connect_timeout: int = 5, busy_timeout: float = SQLITE_BUSY_TIMEOUT_SECONDS,
                write_lock_timeout: float | None = None, on_write_wait: Callable[[float], None] | None = None,
                **kwargs: Any) -> Engine:
    """``busy_timeout`` / ``write_lock_timeout`` (SQLite only): how long a writer waits for SQLite's lock and
    for our writer queue (default: the busy timeout) before "database is locked". ``on_write_wait`` (SQLite
    only) gets each writer's wait for its turn, in seconds: the lock starvation a metric should show."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        # timeout is pysqlite's busy timeout: writers wait for the lock instead of failing at once
        engine = create_engine(url, connect_args={"timeout": busy_timeout,
                                                  "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # SQLAlchemy, not pysqlite, decides when transactions begin (pysqlite's implicit BEGIN breaks
            # SAVEPOINT and starts DEFERRED transactions)
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # WAL lets readers (window queries) proceed while the prediction writer commits
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.close()

        _sqlite_transactions(engine, shared_lock(lock_path_for(make_url(url).database)),
                             busy_timeout if write_lock_timeout is None else write_lock_timeout, on_write_wait)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_timeout", 10)  # a request waits at most this for a pooled connection
    kwargs.setdefault("pool_pre_ping", True)  # a connection that died in an outage is replaced, not used
    connect_args = {"connect_timeout": connect_timeout, **kwargs.pop("connect_args", {})}
    return create_engine(url, connect_args=connect_args, **kwargs)


def _sqlite_transactions(engine: Engine, lock: WriteLock, timeout: float,
                         on_write_wait: Callable[[float], None] | None = None) -> None:
    """Readers: a deferred ``BEGIN``. Writers: ``lock``, then ``BEGIN IMMEDIATE``; the lock goes back once
    the DBAPI commit or rollback has run (the pool's reset-on-return rollback included), so the next writer
    never meets SQLITE_BUSY and never sleeps in SQLite's busy handler."""

    def release(info: dict[Any, Any] | None) -> None:
        if info is not None and info.pop(HOLDS_WRITE_LOCK, False):
            lock.release()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(READONLY):
            # a WAL reader works on a snapshot and takes no lock: nothing to wait for
            conn.exec_driver_sql("BEGIN")
            return
        info = conn.connection.record_info
        started = time.perf_counter()
        try:
            lock.acquire(timeout)
        except sqlite3.OperationalError as exc:  # as if SQLite had said it: a retryable outage, not a bug
            raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        finally:
            if on_write_wait is not None:
                on_write_wait(time.perf_counter() - started)
        info[HOLDS_WRITE_LOCK] = True
        try:
            # IMMEDIATE takes SQLite's write lock up front: a deferred transaction that reads and then
            # writes fails at once with "database is locked" when another process wrote in between (the
            # busy timeout does not apply to that lock upgrade).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            release(info)
            raise

    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            release(dbapi_connection.record_info)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            release(dbapi_connection.record_info)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    @event.listens_for(engine, "invalidate")
    def _invalidated(_dbapi_conn: Any, record: Any, _exc: Any) -> None:  # a broken connection frees it too
        release(record.info)

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        release(record.info)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def read_session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction only reads (SQLite: deferred ``BEGIN``, no write lock)."""
    with sessions() as session:
        session.connection(execution_options={READONLY: True})
        yield session


def database_unreachable(exc: BaseException) -> bool:
    """Whether a database error means "the database is not reachable" (retryable) rather than a bug."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):  # PoolTimeout: every connection hangs
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
