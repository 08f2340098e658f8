"""Where the shipper puts spooled records: into the database from this process (``EngineInserter``), or from
a child process (``service.db.ship_process.ShipProcess``, the server's default). Both take a ``Pending`` span
of a segment file, read and insert its records in one transaction and answer how many rows were new, or
raise one of two errors the writer acts on."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine

from service.db.prediction_block import decode
from service.db.prediction_rows import insert_blocks, is_outage
from service.db.spool import Pending, read_records


class ShipOutage(Exception):
    """The database could not take the batch now (unreachable, restarting, locked): keep it, retry later."""


class ShipRefused(Exception):
    """The database refuses the batch for good (a constraint, a corrupt block): isolate the culprit."""


class BlockInserter(Protocol):
    def insert(self, span: Pending) -> int:
        """Insert the span's records in one transaction; the rows that were new."""
        ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class EngineInserter:
    """Decode and insert in the calling thread (tests, benchmarks of the insert itself, one-off tools)."""

    def __init__(self, engine: Engine, bucket_seconds: int) -> None:
        self.engine = engine
        self.bucket_seconds = bucket_seconds

    def insert(self, span: Pending) -> int:
        try:
            payloads = [payload for _, _, payload in read_records(span.path, span.start, span.end)]
            if len(payloads) != len(span.seqs):  # a record changed on disk after it was written
                raise ValueError(f"{span.path.name} [{span.start}, {span.end}) holds {len(payloads)} intact "
                                 f"records, not {len(span.seqs)}")
            return insert_blocks(self.engine, [decode(p) for p in payloads], self.bucket_seconds)
        except Exception as exc:
            raise (ShipOutage if is_outage(exc) else ShipRefused)(f"{type(exc).__name__}: {exc}") from exc

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass
