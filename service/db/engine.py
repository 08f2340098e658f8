"""Engine construction: one place that knows the SQLite and PostgreSQL specifics.

SQLite (WAL): writers begin with ``BEGIN IMMEDIATE``, read-only work (``read_session``) with a plain
deferred ``BEGIN``, so readers never queue for the write lock behind the prediction writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_SECONDS = 30  # a writer waits this long for the write lock before "database is locked"
READONLY = "readonly"  # execution option: this transaction only reads


def normalise_url(url: str) -> str:
    """``postgresql://`` → psycopg 3 driver (the one we install); everything else unchanged."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, connect_timeout: int = 5, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        # timeout is pysqlite's busy timeout: writers wait for the lock instead of failing at once
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
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
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            if conn.get_execution_options().get(READONLY):
                # a WAL reader works on a snapshot and takes no lock: nothing to wait for
                conn.exec_driver_sql("BEGIN")
                return
            # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then writes
            # fails at once with "database is locked" when another process wrote in between (the busy
            # timeout does not apply to that lock upgrade).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_timeout", 10)  # a request waits at most this for a pooled connection
    kwargs.setdefault("pool_pre_ping", True)  # a connection that died in an outage is replaced, not used
    connect_args = {"connect_timeout": connect_timeout, **kwargs.pop("connect_args", {})}
    return create_engine(url, connect_args=connect_args, **kwargs)


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
