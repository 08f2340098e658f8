"""One SQLite writer at a time, handed over in arrival order, without SQLite's sleeping busy handler.

SQLite allows one writer. A writer that finds the lock taken is parked by SQLite's busy handler, which
sleeps in growing steps (1, 2, 5, … 100 ms) and retries: under a steady prediction load the shipper's
transaction every 50 ms kept a feedback commit asleep for 430 ms at p99 although the lock was free after
a few milliseconds. Queueing writers ourselves wakes the next one the moment the lock is released:
- inside a process, a FIFO of waiters, so the shipper looping on its backlog cannot starve a feedback
  commit (``threading.Lock`` makes no order promise);
- across processes (workers, a shipper process) an ``flock`` on a file beside the database; SQLite's own
  ``BEGIN IMMEDIATE`` and busy timeout stay underneath as the last word.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path

CROSS_PROCESS_POLL_SECONDS = 0.0005  # flock has no timeout: poll LOCK_NB while another process writes


class WriteLock:
    def __init__(self, lock_path: Path | None) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()
        self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644) if lock_path is not None else None

    def acquire(self, timeout: float) -> None:
        """Wait our turn (FIFO), then the file lock; ``sqlite3.OperationalError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._mutex:
            turn: threading.Event | None = None
            if self._held or self._waiters:
                turn = threading.Event()
                self._waiters.append(turn)
            else:
                self._held = True
        if turn is not None and not turn.wait(timeout):
            with self._mutex:
                if turn in self._waiters:  # still queued: give up our place
                    self._waiters.remove(turn)
                    raise sqlite3.OperationalError("database is locked (waited for the write lock)")
            # handed over just as we timed out: we hold it now
        try:
            self._lock_file(deadline)
        except BaseException:
            self._hand_over()
            raise

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._hand_over()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _lock_file(self, deadline: float) -> None:
        if self._fd is None:
            return
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError("database is locked (another process holds the write lock)")
            time.sleep(CROSS_PROCESS_POLL_SECONDS)

    def _hand_over(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # _held stays True: the next writer owns it now
            else:
                self._held = False


_LOCKS: dict[tuple[int, Path | None], WriteLock] = {}
_LOCKS_MUTEX = threading.Lock()


def shared_lock(lock_path: Path | None) -> WriteLock:
    """One lock (and one open file) per database file and process, whatever the number of engines on it:
    engines of one process queue on each other in order too, and tests that build thousands of engines do
    not run out of file descriptors. Keyed by pid: a forked child must not share its parent's flock."""
    key = (os.getpid(), lock_path.resolve() if lock_path is not None else None)
    with _LOCKS_MUTEX:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = WriteLock(lock_path)
        return lock


def lock_path_for(database: str | None) -> Path | None:
    """The lock file beside a file database; ``None`` for an in-memory one (no other process can see it)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(f"{database}-writer.lock")
