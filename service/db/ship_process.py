"""The prediction log's database work in a child process, off the serving process's GIL.

Measured under load (``/v1`` batch 1, c=8, SQLite): shipping from a thread of the serving process cost ~100 µs
of that thread's CPU per request *and* ~85 µs more on the event loop (GIL hand-overs every switch interval,
caches), and drove p99 from 4 to 40 ms. Here the shipper thread stays in the serving process — it still owns
the spool cursor, ``flush`` and the outage backoff — but only names a span of a segment file (``Pending``,
taken from the spool's in-memory index) and blocks (GIL released) until the child answers: reading the
records back, decoding, row building, the insert and the per-bucket counts run in the child's own interpreter.

Protocol (stdin / a private copy of stdout, both pipes): the parent writes ``start, end, records, path
length, path`` (uint64, uint64, uint32, uint32, UTF-8); the child answers ``status, new rows, message length,
message`` (uint8, uint64, uint32, UTF-8). The child ignores SIGINT and SIGTERM — a terminal's Ctrl-C or a
``killpg`` reaches the whole group, and the parent's graceful stop still needs it to ship — and exits when its
stdin closes, which is also what a SIGKILLed parent leaves it. A dead or broken child is an outage to the
writer: it backs off, the next batch starts a new child, and the spool keeps every row meanwhile.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from service.db.child_stop import close_and_wait
from service.db.inserters import ShipOutage, ShipRefused
from service.db.spool import Pending

log = logging.getLogger(__name__)

URL_ENV = "CALIBSERVE_SHIP_DATABASE_URL"  # by environment: the URL may hold a password
SPAN = struct.Struct("<QQII")
REPLY = struct.Struct("<BQI")
OK, OUTAGE, REFUSED = 0, 1, 2


class ShipProcess:
    """``BlockInserter`` backed by one child process, started with the writer and again after it dies."""

    def __init__(self, url: str, bucket_seconds: int, connect_timeout: int = 5) -> None:
        self.url = url
        self.bucket_seconds = bucket_seconds
        self.connect_timeout = connect_timeout
        self.started = 0  # children started so far (a replaced child shows here)
        self._proc: subprocess.Popen[bytes] | None = None
        self._mutex = threading.Lock()  # one batch in flight: the protocol has no request ids

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child now (its imports take ~1 s), so the first batch does not wait for them."""
        with self._mutex:
            self._child()

    def insert(self, span: Pending) -> int:
        path = os.fsencode(span.path)
        frame = SPAN.pack(span.start, span.end, len(span.seqs), len(path)) + path
        with self._mutex:
            proc = self._child()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(frame)
                proc.stdin.flush()
                status, new, size = REPLY.unpack(_read_exactly(proc.stdout, REPLY.size))
                message = _read_exactly(proc.stdout, size).decode("utf-8", "replace")
            except (OSError, EOFError) as exc:
                code = self._discard()
                raise ShipOutage(f"the ship process stopped (exit code {code}): {exc}") from None
        if status == OK:
            return int(new)
        raise (ShipOutage if status == OUTAGE else ShipRefused)(message)

    def close(self, timeout: float = 10.0) -> None:
        """Close the child's stdin (it exits after any batch in flight); kill it if it does not."""
        with self._mutex:
            proc, self._proc = self._proc, None
        if proc is not None:
            close_and_wait(proc, timeout)

    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                self._discard()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "service.db.ship_process", str(self.bucket_seconds), str(self.connect_timeout)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, URL_ENV: self.url})
            self.started += 1
        return self._proc

    def _discard(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        proc.kill()
        code = proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        log.warning("the prediction-log ship process exited (code %s); a new one takes the next batch", code)
        return code


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("the pipe closed mid-message")
    return data


def serve(bucket_seconds: int, connect_timeout: int) -> None:
    """The child's loop: one batch in, one reply out, until stdin closes."""
    from service.db.engine import make_engine
    from service.db.inserters import EngineInserter

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must never corrupt the protocol
    requests = sys.stdin.buffer
    inserter = EngineInserter(make_engine(os.environ[URL_ENV], connect_timeout=connect_timeout), bucket_seconds)
    # the modules, tables and (after the first batch) the driver's state leave the collector's view: a full
    # collection of them paused a round by tens of ms, and a feedback request waiting on a flush with it
    gc.collect()
    gc.freeze()
    frozen_after_first = False
    while True:
        try:
            start, end, count, size = SPAN.unpack(_read_exactly(requests, SPAN.size))
            path = Path(os.fsdecode(_read_exactly(requests, size)))
        except EOFError:
            return
        status, new, message = OK, 0, ""
        try:
            new = inserter.insert(Pending(path, start, end, range(count), 0, 0))
        except ShipOutage as exc:
            status, message = OUTAGE, str(exc)
        except ShipRefused as exc:
            status, message = REFUSED, str(exc)
        if status == OK and not frozen_after_first:
            gc.freeze()
            frozen_after_first = True
        encoded = message[:4000].encode()
        try:
            replies.write(REPLY.pack(status, new, len(encoded)) + encoded)
            replies.flush()
        except BrokenPipeError:  # the parent is gone; what was committed is re-shipped idempotently
            return


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="ship-process %(levelname)s %(name)s: %(message)s")
    serve(int(sys.argv[1]), int(sys.argv[2]))
