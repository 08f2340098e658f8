"""Background batched writer for the prediction log: off the request's critical path.

A request hands over one compact ``PredictionBlock`` (arrays, not per-row dicts); the writer thread
expands blocks into rows and inserts them in batches (PostgreSQL ``COPY``, SQLite ``executemany``), so
the per-row cost stays a few microseconds and the GIL is held briefly.

Policy when the database is slow: the queue is bounded in **rows** (``log_queue_size``); a prediction
whose rows do not fit is still served, its rows are dropped and counted
(``calibserve_prediction_log_dropped_total``), and readiness reports the saturated queue. Predictions are
never blocked on the database.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine

from service.db.decision_stats import SERVED_COLUMNS, ServedBlock
from service.db.stats import add_prediction_counts

log = logging.getLogger(__name__)

COLUMNS = ("id", "model", "version", "calibrator_version", "created_at", "logits", "probabilities", "confidence",
           "class_index", "tags")


@dataclass(frozen=True)
class PredictionBlock:
    """The rows of one request: the same model, versions, time and tags; per-row arrays."""

    model: str
    version: int
    calibrator_version: int
    created_at: datetime
    ids: list[str]
    logits: np.ndarray  # (n, K) float32 little-endian
    probabilities: np.ndarray  # (n, K) float32 little-endian
    confidence: np.ndarray  # (n,)
    class_index: np.ndarray  # (n,)
    tags: dict[str, Any] | None = None
    served: ServedBlock | None = None  # sets / decisions, when the request asked for them

    def rows(self, sqlite: bool) -> list[tuple[Any, ...]]:
        # SQLite stores DateTime as SQLAlchemy's naive-UTC text; PostgreSQL takes the aware datetime
        created: Any = (self.created_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
                        if sqlite else self.created_at)
        tags = json.dumps(self.tags) if self.tags is not None else None
        return [
            (pid, self.model, self.version, self.calibrator_version, created, self.logits[i].tobytes(),
             self.probabilities[i].tobytes(), float(self.confidence[i]), int(self.class_index[i]), tags)
            for i, pid in enumerate(self.ids)
        ]


def _bulk_insert(dbapi: Any, sqlite: bool, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if sqlite:
        placeholders = ", ".join("?" * len(columns))
        dbapi.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
    else:  # COPY: the fastest bulk path into PostgreSQL (psycopg 3)
        with dbapi.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def insert_blocks(conn: Connection, blocks: list[PredictionBlock], bucket_seconds: int) -> int:
    """Insert the blocks' rows and their per-bucket prediction counts in the caller's transaction."""
    sqlite = conn.dialect.name == "sqlite"
    rows = [row for block in blocks for row in block.rows(sqlite)]
    dbapi: Any = conn.connection.driver_connection
    _bulk_insert(dbapi, sqlite, "predictions", COLUMNS, rows)
    served = [row for b in blocks if b.served is not None for row in b.served.tuples(b.ids)]
    _bulk_insert(dbapi, sqlite, "prediction_decisions", SERVED_COLUMNS, served)  # after predictions (foreign key)
    add_prediction_counts(conn, [{"model": b.model, "version": b.version, "calibrator_version": b.calibrator_version,
                                  "created_at": b.created_at, "confidence": float(c)}
                                 for b in blocks for c in b.confidence], bucket_seconds)
    return len(rows)


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
        self.queue: queue.Queue[PredictionBlock | threading.Event | None] = queue.Queue()
        self.max_rows = max_queue
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.bucket_seconds = bucket_seconds
        self.on_written = on_written
        self.on_dropped = on_dropped
        self.dropped = 0
        self.written = 0
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="prediction-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, block: PredictionBlock) -> bool:
        """Enqueue one request's rows without blocking; False (and counted) when the queue is full."""
        n = len(block.ids)
        with self._lock:
            if self._queued_rows + n > self.max_rows:
                self.dropped += n
                full = True
            else:
                self._queued_rows += n
                full = False
        if full:
            self.on_dropped(n)
            return False
        self.queue.put(block)
        return True

    def depth(self) -> int:
        """Rows waiting to be written."""
        return self._queued_rows

    def saturated(self) -> bool:
        return self._queued_rows >= self.max_rows

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every row enqueued before this call is committed."""
        done = threading.Event()
        self.queue.put(done)
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown: write what is queued, then end the thread."""
        if self._thread.is_alive():
            self.queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self.queue.get()  # sleep until there is work
            except Exception:  # pragma: no cover - queue.get without timeout does not raise
                continue
            blocks: list[PredictionBlock] = []
            waiters: list[threading.Event] = []
            n = 0
            deadline = time.monotonic() + self.flush_seconds
            item: PredictionBlock | threading.Event | None = first
            # collect until the batch is full, the flush interval has passed, or someone waits/stops
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    blocks.append(item)
                    n += len(item.ids)
                if stopping or waiters or n >= self.batch_size:
                    break
                try:
                    item = self.queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
            if blocks:
                self._write(blocks, n)
            for event in waiters:
                event.set()

    def _write(self, blocks: list[PredictionBlock], n: int) -> None:
        try:
            with self.engine.begin() as conn:
                insert_blocks(conn, blocks, self.bucket_seconds)
            self.written += n
            self.on_written(n)
        except Exception:  # the service keeps serving; the loss is visible in the drop counter
            log.exception("prediction log write failed; dropping %d rows", n)
            self.dropped += n
            self.on_dropped(n)
        finally:
            with self._lock:
                self._queued_rows -= n
