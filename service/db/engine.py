"""Engine construction: one place that knows the SQLite and PostgreSQL specifics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str) -> str:
    """``postgresql://`` → psycopg 3 driver (the one we install); everything else unchanged."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        # timeout: writers wait for the lock instead of failing ("database is locked")
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

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
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then writes
            # fails at once with "database is locked" when another process wrote in between (the busy
            # timeout does not apply to that lock upgrade). In WAL mode readers outside are not blocked.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
