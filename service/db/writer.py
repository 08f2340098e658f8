"""Background batched writer for the prediction log: off the request's critical path.

Policy when the database is slow: the queue is bounded (``log_queue_size``); a prediction whose row does
not fit is still served, its row is dropped and counted (``calibserve_prediction_log_dropped_total``),
and readiness reports the saturated queue. Predictions are never blocked on the database.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert

from service.db.stats import add_prediction_counts
from service.db.tables import Prediction

log = logging.getLogger(__name__)

Row = dict[str, Any]


class PredictionWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        max_queue: int = 50_000,
        batch_size: int = 1000,
        flush_seconds: float = 0.05,
        bucket_seconds: int = 60,
        on_written: Callable[[int], None] = lambda n: None,
        on_dropped: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.engine = engine
        self.queue: queue.Queue[list[Row] | threading.Event | None] = queue.Queue(maxsize=max_queue)
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.bucket_seconds = bucket_seconds
        self.on_written = on_written
        self.on_dropped = on_dropped
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="prediction-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, rows: list[Row]) -> bool:
        """Enqueue one request's rows without blocking; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait(rows)
            return True
        except queue.Full:
            self.dropped += len(rows)
            self.on_dropped(len(rows))
            return False

    def depth(self) -> int:
        return self.queue.qsize()

    def saturated(self) -> bool:
        return self.queue.maxsize > 0 and self.queue.qsize() >= self.queue.maxsize

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every row enqueued before this call is committed."""
        done = threading.Event()
        self.queue.put(done, timeout=timeout)
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown: write what is queued, then end the thread."""
        if self._thread.is_alive():
            self.queue.put(None, timeout=timeout)
            self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[Row] = []
        waiters: list[threading.Event] = []
        stopping = False
        while not stopping:
            try:
                item = self.queue.get(timeout=self.flush_seconds)
            except queue.Empty:
                item = []
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    pending.extend(item)
                if len(pending) >= self.batch_size or stopping or waiters:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if pending:
                self._write(pending)
                pending = []
            for event in waiters:
                event.set()
            waiters = []

    def _write(self, rows: list[Row]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(Prediction), rows)
                add_prediction_counts(conn, rows, self.bucket_seconds)
            self.written += len(rows)
            self.on_written(len(rows))
        except Exception:  # the service keeps serving; the loss is visible in the drop counter
            log.exception("prediction log write failed; dropping %d rows", len(rows))
            self.dropped += len(rows)
            self.on_dropped(len(rows))
