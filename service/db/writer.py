"""The prediction log: a request's block is appended to the durable local spool (``db/spool.py``) before the
response; a shipper thread has spooled spans inserted into the database — by the ship process
(``db/ship_process.py``, a server's default) or in-process (``db/inserters.EngineInserter``) — and deletes them
once committed. Each round ships what was spooled before it, then waits for the next tick or a ``flush``.

What this guarantees, and how:
- an id handed to a client is in the spool file before the response, so it survives SIGKILL of the server
  and database outages; a restarted process (or another worker on the same spool directory) adopts the
  files of a dead one and ships them;
- shipping is idempotent: a block re-shipped after a crash between the database commit and the spool delete
  is inserted with ``ON CONFLICT DO NOTHING``, and only rows new to the database are counted in the
  per-bucket statistics;
- while the database is unreachable the shipper retries with backoff and the spool grows, up to
  ``max_bytes``; past that bound ``submit`` raises ``SpoolFull`` *before* anything is answered, so no id
  is ever returned for a row that was not kept (the caller answers 503 + Retry-After).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from service.db.inserters import BlockInserter, EngineInserter, ShipOutage
from service.db.prediction_block import PredictionBlock, encode
from service.db.prediction_rows import insert_blocks
from service.db.ship_process import ShipProcess
from service.db.spool import Pending, SpoolFile, SpoolFull, create_own, orphans

log = logging.getLogger(__name__)

__all__ = ["PredictionBlock", "PredictionWriter", "SpoolFull", "insert_blocks"]

ORPHAN_SCAN_SECONDS = 10.0
ID_TO_SPOOL_SECONDS = 0.1


class PredictionWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        spool_dir: Path,
        max_spool_bytes: int = 1 << 30,
        batch_size: int = 1000,
        flush_seconds: float = 0.05,
        bucket_seconds: int = 60,
        on_written: Callable[[int], None] = lambda n: None,
        on_refused: Callable[[int], None] = lambda n: None,
        on_dropped: Callable[[int], None] = lambda n: None,
        ship_process: bool = False,
        connect_timeout: int = 5,
    ) -> None:
        self.engine = engine
        # the database work itself: in a child process for a server (off its GIL, db/ship_process.py), or here
        self.inserter: BlockInserter = (
            ShipProcess(engine.url.render_as_string(hide_password=False), bucket_seconds, connect_timeout)
            if ship_process else EngineInserter(engine, bucket_seconds))
        self.spool_dir = spool_dir
        self.max_spool_bytes = max_spool_bytes
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.bucket_seconds = bucket_seconds
        self.on_written = on_written
        self.on_refused = on_refused
        self.on_dropped = on_dropped
        self.written = 0
        self.refused = 0
        self.dropped = 0  # rows the database refused for good (kept in the spool's dead table)
        self.database_ok = True
        # Unix time before which every row this process spooled is in the database (a completed round's
        # start): a label for an id made earlier needs no flush (``may_hold``)
        self.shipped_before = 0.0
        self._own: SpoolFile | None = None
        self._adopted: list[SpoolFile] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._shipped = threading.Condition()
        self._shipped_seq = 0
        self._thread = threading.Thread(target=self._run, name="prediction-shipper", daemon=True)

    # ---- request side ---------------------------------------------------------------------------
    def start(self) -> None:
        self._own = create_own(self.spool_dir)
        self._adopted = orphans(self.spool_dir, self._own.path)
        self.dropped = self._own.dead_rows  # every dead-*.log in the directory: lost rows stay counted
        if self._adopted:
            log.warning("adopting %d spool file(s) of stopped processes: %d rows to ship",
                        len(self._adopted), sum(f.rows for f in self._adopted))
        self.inserter.start()
        self._thread.start()

    def submit(self, block: PredictionBlock) -> None:
        """Append one request's rows to the spool (durable on return) or raise ``SpoolFull``."""
        own = self._spool()
        payload = encode(block)
        if self.spool_bytes() + len(payload) > self.max_spool_bytes:
            self.refused += len(block.ids)
            self.on_refused(len(block.ids))
            raise SpoolFull(f"the prediction-log spool holds {self.spool_bytes()} bytes (bound "
                            f"{self.max_spool_bytes}); the database is not keeping up")
        own.append(payload, len(block.ids))  # no wake-up per request: the shipper polls every flush_seconds

    def fits(self, n_rows: int, bytes_per_row: int) -> bool:
        """Whether a block of this size could ever be spooled (a batch over the bound is refused up front)."""
        return n_rows * bytes_per_row <= self.max_spool_bytes

    def depth(self) -> int:
        """Rows accepted but not yet in the database (this process's spool and the files it adopted)."""
        files = [f for f in (self._own, *self._adopted) if f is not None]
        return sum(f.rows for f in files)

    def spool_bytes(self) -> int:
        return sum(f.bytes for f in (self._own, *self._adopted) if f is not None)

    def may_hold(self, made_at: float) -> bool:
        """Whether a row whose id was made at this Unix time may still be in this process's spool (then a
        ``flush`` puts it in the database). An id is made just before its block is encoded and appended, which
        takes tens of ms for a large block, hence the margin."""
        return bool(self._adopted) or made_at >= self.shipped_before - ID_TO_SPOOL_SECONDS

    def saturated(self) -> bool:
        """Within 10% of the bound: readiness turns 503 so a load balancer sends traffic elsewhere before
        predict itself has to refuse."""
        return self.spool_bytes() >= 0.9 * self.max_spool_bytes

    def flush(self, timeout: float = 10.0, *, until_outage: bool = False) -> bool:
        """Block until every row spooled before this call is in the database (False on timeout, or with
        ``until_outage`` as soon as a shipping round has failed)."""
        target = self._spool().last_appended
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._shipped:
            while ((self._shipped_seq < target or self._adopted) and time.monotonic() < deadline
                   and not (until_outage and not self.database_ok)):
                self._shipped.wait(min(0.05, max(deadline - time.monotonic(), 0.0)))
                self._wake.set()
            return self._shipped_seq >= target and not self._adopted

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown: ship what is spooled (bounded by ``timeout``); anything left stays on disk
        and is shipped by the next process on this spool directory."""
        if self._thread.is_alive():
            self.flush(timeout, until_outage=True)  # a dead database must not hold up shutdown
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout)
        self.inserter.close()
        for spool in (*self._adopted, *([self._own] if self._own is not None else [])):
            spool.close()
        self._adopted = []

    def _spool(self) -> SpoolFile:
        if self._own is None:
            raise RuntimeError("the prediction writer was not started")
        return self._own

    # ---- shipper thread -------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.0
        scanned = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds if backoff == 0.0 else backoff)
            self._wake.clear()
            if time.monotonic() - scanned > ORPHAN_SCAN_SECONDS:  # a sibling worker that died meanwhile
                scanned = time.monotonic()
                self._adopted += orphans(self.spool_dir, self._spool().path)
            try:
                self._drain()
                self.database_ok, backoff = True, 0.0
            except Exception:  # the database is down or failing: keep the spool, retry with backoff
                if self.database_ok:
                    log.exception("shipping the prediction log failed; the spool keeps the rows, retrying")
                self.database_ok = False
                backoff = min(max(backoff * 2, 0.1), 5.0)

    def _drain(self) -> None:
        """Ship what was spooled before this call (adopted files first), in batches of ``batch_size`` rows,
        then wait for the next tick or ``flush``: under load a round takes everything since the last one, not
        a stream of tiny transactions (each costs its per-bucket upserts whatever its size)."""
        for spool in list(self._adopted):
            while self._ship_from(spool):
                pass
            self._adopted.remove(spool)  # drained: the dead process's file goes
            spool.close()
        own = self._spool()
        started = time.time()
        target = own.last_appended  # read before the batch: an append racing with us is not claimed
        while own.shipped_through < target and self._ship_from(own):
            pass
        with self._shipped:
            self.shipped_before = max(self.shipped_before, started)
            self._shipped_seq = max(self._shipped_seq, target)
            self._shipped.notify_all()

    def _ship_from(self, spool: SpoolFile) -> bool:
        span = spool.pending(self.batch_size)
        if span is None:
            return False
        try:
            self._insert(spool, span)
        except ShipOutage:
            raise  # keep everything, the caller backs off
        except Exception:  # refused for good, perhaps by one record: isolate it so the others ship
            if len(span.seqs) == 1:
                self._bury(spool, span)
            else:
                for _ in span.seqs:
                    self._ship_one(spool)
        if spool is self._own:
            with self._shipped:
                self._shipped_seq = span.seqs[-1]
                self._shipped.notify_all()
        return True

    def _ship_one(self, spool: SpoolFile) -> None:
        one = spool.pending(1)
        assert one is not None and len(one.seqs) == 1
        try:
            self._insert(spool, one)
        except ShipOutage:
            raise
        except Exception:
            self._bury(spool, one)

    def _bury(self, spool: SpoolFile, span: Pending) -> None:
        log.exception("the database refuses spooled record %d (%d rows); kept in the dead table",
                      span.seqs[0], span.rows)
        spool.bury(span.seqs[0], span.rows, span.bytes)
        self.dropped += span.rows
        self.on_dropped(span.rows)

    def _insert(self, spool: SpoolFile, span: Pending) -> None:
        new = self.inserter.insert(span)
        spool.delete(span.seqs, span.rows, span.bytes)
        self.written += new
        self.on_written(new)
