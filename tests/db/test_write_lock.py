"""service/db/write_lock.py and its use by SQLite engines: writers are handed the lock in arrival order, it is
given back by commit, rollback and a session closed mid-transaction, and another process's lock file
holds our writers back until it is released (or the timeout says "database is locked")."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from service.db.engine import database_unreachable, make_engine, make_sessionmaker
from service.db.write_lock import WriteLock, lock_path_for, shared_lock
from tests.conftest import migrated_database

INSERT = "INSERT INTO aliases (model, alias, version, updated_at) VALUES (:m, 'a', 1, CURRENT_TIMESTAMP)"


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    with migrated_database("sqlite", tmp_path) as url:
        yield url


def test_waiters_get_the_lock_in_arrival_order(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "db-writer.lock")
    lock.acquire(10)
    order: list[int] = []
    queued = [threading.Event() for _ in range(5)]

    def writer(i: int) -> None:
        queued[i].set()
        lock.acquire(10)
        order.append(i)
        lock.release()

    threads = []
    for i in range(5):  # each one queues only after the previous one is waiting
        t = threading.Thread(target=writer, args=(i,))
        t.start()
        assert queued[i].wait(5)
        while len(lock._waiters) < i + 1:  # noqa: SLF001 - wait until it is parked in the queue
            threading.Event().wait(0.001)
        threads.append(t)
    lock.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3, 4]
    lock.close()


def test_a_waiter_that_times_out_gives_up_its_place(tmp_path: Path) -> None:
    lock = WriteLock(None)
    lock.acquire(1)
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _record(errors, lambda: lock.acquire(0.05)))
    t.start()
    t.join(5)
    assert len(errors) == 1 and "database is locked" in str(errors[0])
    assert not lock._waiters  # noqa: SLF001
    lock.release()
    lock.acquire(0.05)  # free again, at once
    lock.release()


def _record(errors: list[BaseException], fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        errors.append(exc)


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_every_end_of_a_transaction_gives_the_lock_back(sqlite_file: str, end: str) -> None:
    engine = make_engine(sqlite_file)
    sessions = make_sessionmaker(engine)
    for i in range(3):  # the second and third writer would wait forever on a lock never given back
        session = sessions()
        session.execute(text(INSERT), {"m": f"m{i}"})
        if end == "commit":
            session.commit()
        elif end == "rollback":
            session.rollback()
        session.close()
    with sessions() as session:
        n = session.execute(text("SELECT count(*) FROM aliases")).scalar_one()
    assert n == (3 if end == "commit" else 0)
    engine.dispose()


def test_a_failed_statement_releases_the_lock_with_its_rollback(sqlite_file: str) -> None:
    engine = make_engine(sqlite_file)
    sessions = make_sessionmaker(engine)
    with sessions() as session, pytest.raises(OperationalError):
        session.execute(text("INSERT INTO no_such_table VALUES (1)"))
    with sessions() as session:  # would block for the busy timeout if the lock had leaked
        session.execute(text(INSERT), {"m": "after"})
        session.commit()
    engine.dispose()


def test_threads_of_one_engine_never_meet_sqlite_busy(sqlite_file: str) -> None:
    # pysqlite's own timeout at 0: without our queue, two concurrent writers fail with "database is locked"
    engine = make_engine(sqlite_file, busy_timeout=0, write_lock_timeout=30)
    sessions = make_sessionmaker(engine)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        for i in range(30):
            try:
                with sessions() as session:
                    session.execute(text(INSERT), {"m": f"t{k}-{i}"})
                    session.commit()
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM aliases")).scalar_one() == 120
    engine.dispose()


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def test_another_process_holding_the_lock_file_holds_writers_back(sqlite_file: str) -> None:
    path = lock_path_for(sqlite_file.removeprefix("sqlite:///"))
    assert path is not None and path.name.endswith("-writer.lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        engine = make_engine(sqlite_file, write_lock_timeout=0.2)
        sessions = make_sessionmaker(engine)
        with pytest.raises(OperationalError, match="another process holds the write lock") as raised, sessions() as s:
            s.execute(text(INSERT), {"m": "blocked"})
        assert database_unreachable(raised.value)  # answered 503 + Retry-After, like SQLite's own "locked"
        holder.communicate("", timeout=10)  # the other process exits: its lock goes with it
        with sessions() as session:
            session.execute(text(INSERT), {"m": "free"})
            session.commit()
            assert session.execute(text("SELECT model FROM aliases")).scalars().all() == ["free"]
        engine.dispose()
    finally:
        holder.kill()
        holder.wait()


def test_engines_of_one_process_share_one_lock_per_file(tmp_path: Path) -> None:
    a, b = shared_lock(tmp_path / "x.db-writer.lock"), shared_lock(tmp_path / "x.db-writer.lock")
    assert a is b and shared_lock(tmp_path / "y.db-writer.lock") is not a


def test_in_memory_databases_need_no_lock_file() -> None:
    assert lock_path_for(":memory:") is None and lock_path_for(None) is None and lock_path_for("") is None
    assert lock_path_for("/tmp/x.db") == Path("/tmp/x.db-writer.lock")
