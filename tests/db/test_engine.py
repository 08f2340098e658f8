"""service/db/engine.py: on SQLite, writers take the write lock up front (BEGIN IMMEDIATE) and read-only
sessions do not (deferred BEGIN), so a read never waits behind the prediction writer; on both databases a
read session sees committed rows."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from service.db.engine import make_engine, make_sessionmaker, read_session
from tests.conftest import migrated_database

INSERT = "INSERT INTO aliases (model, alias, version, updated_at) VALUES ('{}', '{}', {}, CURRENT_TIMESTAMP)"


def test_read_sessions_read_on_both_databases(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        session.execute(text(INSERT.format("m", "a", 1)))
        session.commit()
    with read_session(sessions) as session:
        assert session.execute(text("SELECT version FROM aliases WHERE model = 'm'")).scalar_one() == 1
    engine.dispose()


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    with migrated_database("sqlite", tmp_path) as url:
        yield url


def _hold_write_lock(path: str, held: threading.Event, release: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(INSERT.format("w", "x", 2))
    held.set()
    release.wait(10)
    conn.execute("COMMIT")
    conn.close()


def test_a_sqlite_reader_does_not_wait_for_the_write_lock(sqlite_file: str) -> None:
    engine = make_engine(sqlite_file)
    sessions = make_sessionmaker(engine)
    held, release = threading.Event(), threading.Event()
    writer = threading.Thread(target=_hold_write_lock, args=(sqlite_file.removeprefix("sqlite:///"), held, release))
    writer.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        with read_session(sessions) as session:  # deferred BEGIN: reads the last committed snapshot
            rows = session.execute(text("SELECT count(*) FROM aliases WHERE model = 'w'")).scalar_one()
        assert rows == 0 and time.monotonic() - started < 1.0

        waited: list[float] = []

        def write() -> None:
            t0 = time.monotonic()
            with sessions() as session:  # BEGIN IMMEDIATE: queues for the lock (busy timeout), no error
                session.execute(text(INSERT.format("w", "y", 3)))
                session.commit()
            waited.append(time.monotonic() - t0)

        second = threading.Thread(target=write)
        second.start()
        time.sleep(0.5)
        assert second.is_alive()  # still waiting for the first writer's lock
        release.set()
        second.join(10)
        assert waited and waited[0] >= 0.5
    finally:
        release.set()
        writer.join(10)
    with read_session(sessions) as session:
        assert session.execute(text("SELECT count(*) FROM aliases WHERE model = 'w'")).scalar_one() == 2
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_file: str) -> None:
    engine = make_engine(sqlite_file)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
    engine.dispose()


def test_sqlite_datetime_text_is_what_sqlalchemy_stores() -> None:
    """The cached per-second text gives exactly the naive-UTC ``isoformat`` SQLAlchemy's SQLite DateTime
    writes, for aware times in any offset and for naive (UTC) times, across centuries and leap days."""
    import random
    from datetime import UTC, datetime, timedelta, timezone

    from service.db.engine import sqlite_datetime_text

    rng = random.Random(7)
    times = [datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
             datetime(1, 1, 1, 0, 0, 0, 5, tzinfo=UTC) + timedelta(days=1)]
    times += [datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(-10**16, 10**17))
              for _ in range(5000)]
    for t in times:
        offset = timezone(timedelta(minutes=rng.randrange(-720, 721)))
        for value in (t, t.astimezone(offset), t.replace(tzinfo=None)):
            expected = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
            assert sqlite_datetime_text(value) == expected.isoformat(sep=" ", timespec="microseconds")


def test_sqlite_writers_report_their_wait_for_the_write_lock_and_readers_report_none(sqlite_file: str) -> None:
    waits: list[float] = []
    holder = make_sessionmaker(make_engine(sqlite_file))  # the same file: the same process-wide writer queue
    sessions = make_sessionmaker(make_engine(sqlite_file, on_write_wait=waits.append))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder() as session:
            session.execute(text(INSERT.format("h", "x", 1)))
            held.set()
            release.wait(10)
            session.commit()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    threading.Timer(0.3, release.set).start()
    with sessions() as session:  # waits its turn behind the holder's transaction
        session.execute(text(INSERT.format("w", "y", 2)))
        session.commit()
    thread.join(10)
    with read_session(sessions) as session:
        assert session.execute(text("SELECT count(*) FROM aliases")).scalar_one() == 2
    with sessions() as session:  # nobody else writing now: its turn comes at once
        session.execute(text(INSERT.format("w", "z", 3)))
        session.commit()
    assert len(waits) == 2, waits  # one per write transaction, none for the read
    assert 0.2 <= waits[0] < 5.0 and waits[1] < 0.1, waits
