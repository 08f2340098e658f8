"""Inserting shipped blocks into the database: the fast bulk path (COPY on PostgreSQL, executemany on
SQLite), the idempotent fallback for a block shipped twice, and telling an outage from a refusal."""

from __future__ import annotations

import math
import sqlite3
import sys
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from service.db.decision_stats import SERVED_COLUMNS
from service.db.engine import sqlite_datetime_text
from service.db.prediction_block import PredictionBlock, le_bytes
from service.db.rollups import as_utc, bucket_start
from service.db.stats import Upsert, bucket_count_upserts, execute_upserts
from service.db.tables import Prediction
from service.db.tags import insert_tags, tags_id

COLUMNS = ("id", "model", "version", "calibrator_version", "created_at", "logits", "probabilities", "confidence",
           "class_index", "tags_id")


def block_rows(block: PredictionBlock, sqlite_text_dates: bool) -> list[tuple[Any, ...]]:
    # SQLite stores DateTime as SQLAlchemy's naive-UTC text; PostgreSQL takes the aware datetime
    created: Any = sqlite_datetime_text(block.created_at) if sqlite_text_dates else block.created_at
    tags = tags_id(block.tags)  # the tags themselves: once, in prediction_tags (insert_tags)
    head = (block.model, block.version, block.calibrator_version, created)
    # whole-array conversions, then plain slicing: numpy row indexing cost ~1 µs per row and array
    return [(pid, *head, logits, probs, confidence, k, tags) for pid, logits, probs, confidence, k in zip(
        block.ids, _row_bytes(block.logits), _row_bytes(block.probabilities), block.confidence.tolist(),
        block.class_index.tolist(), strict=True)]


def _row_bytes(a: np.ndarray) -> list[bytes]:
    """Each row of an (n, K) array as its float32 little-endian bytes."""
    raw = le_bytes(a, "<f4")
    n = a.shape[0]
    if n == 1:
        return [raw]
    step = len(raw) // n if n else 0
    return [raw[i * step:(i + 1) * step] for i in range(n)]


def _fast_insert(conn: Connection, rows: list[tuple[Any, ...]], table: str = "predictions",
                 columns: tuple[str, ...] = COLUMNS) -> None:
    if not rows:
        return
    dbapi: Any = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        placeholders = ", ".join("?" * len(columns))
        dbapi.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
    else:  # COPY: the fastest bulk path into PostgreSQL (psycopg 3)
        with dbapi.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _served_rows(blocks: list[PredictionBlock], only: set[str] | None = None) -> list[tuple[Any, ...]]:
    """``prediction_decisions`` rows of the blocks that asked for sets / decisions (of the ``only`` ids)."""
    return [row for b in blocks if b.served is not None for row in b.served.tuples(b.ids)
            if only is None or row[0] in only]


def _idempotent_insert(conn: Connection, blocks: list[PredictionBlock]) -> set[str]:
    """INSERT … ON CONFLICT (id) DO NOTHING RETURNING id through the table's column types: the new ids."""
    table = cast(Table, Prediction.__table__)
    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
    naive = conn.dialect.name == "sqlite"  # stored as naive UTC text, like the fast path
    params = [{"id": pid, "model": b.model, "version": b.version, "calibrator_version": b.calibrator_version,
               "created_at": b.created_at.astimezone(UTC).replace(tzinfo=None) if naive else b.created_at,
               "logits": b.logits[i].tobytes(), "probabilities": b.probabilities[i].tobytes(),
               "confidence": float(b.confidence[i]), "class_index": int(b.class_index[i]), "tags_id": key}
              for b in blocks for key in (tags_id(b.tags),) for i, pid in enumerate(b.ids)]
    return set(conn.execute(stmt, params).scalars().all())


def insert_blocks(engine: Engine, blocks: list[PredictionBlock], bucket_seconds: int) -> int:
    """Insert the blocks' rows and their per-bucket prediction counts in one transaction; returns the rows
    that were new. A re-shipped block (its rows already stored) falls back to the idempotent insert."""
    # rows and statistics built before the transaction: on SQLite its write lock is every writer's
    rows = [r for b in blocks for r in block_rows(b, engine.dialect.name == "sqlite")]
    served = _served_rows(blocks)
    counts = _count_upserts(blocks, None, bucket_seconds)
    try:
        with engine.begin() as conn:
            insert_tags(conn, (b.tags for b in blocks))
            _fast_insert(conn, rows)
            _fast_insert(conn, served, "prediction_decisions", SERVED_COLUMNS)  # after (foreign key)
            execute_upserts(conn, counts)
            return len(rows)
    except Exception as exc:  # raw driver paths raise raw errors; psycopg's are known once it is loaded
        if not isinstance(exc, (IntegrityError, sqlite3.IntegrityError, *_psycopg_errors("IntegrityError"))):
            raise
        with engine.begin() as conn:
            insert_tags(conn, (b.tags for b in blocks))
            new = _idempotent_insert(conn, blocks)
            _fast_insert(conn, _served_rows(blocks, new), "prediction_decisions", SERVED_COLUMNS)  # new rows only
            execute_upserts(conn, _count_upserts(blocks, new, bucket_seconds))
            return len(new)


def _count_upserts(blocks: list[PredictionBlock], only: set[str] | None, bucket_seconds: int) -> list[Upsert]:
    """The blocks' prediction counts, grouped a block at a time (its rows share model, versions and time)."""
    groups: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    buckets: dict[int, datetime] = {}
    for b in blocks:
        second = math.floor(as_utc(b.created_at).timestamp())  # buckets are whole seconds: one per second
        bucket = buckets.get(second)
        if bucket is None:
            bucket = buckets[second] = bucket_start(b.created_at, bucket_seconds)
        confidences = b.confidence.tolist()
        if only is not None:
            confidences = [c for pid, c in zip(b.ids, confidences, strict=True) if pid in only]
        groups[(b.model, b.version, b.calibrator_version, bucket)] += confidences
    return bucket_count_upserts(groups)


def is_outage(exc: BaseException) -> bool:
    """A failure to retry (unreachable, restarting, locked) as opposed to a row the database refuses."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
    return isinstance(exc, (sqlite3.OperationalError, *_psycopg_errors("OperationalError", "InterfaceError")))


def _psycopg_errors(*names: str) -> tuple[type[BaseException], ...]:
    """psycopg's exception classes if a PostgreSQL engine loaded it, else none: a SQLite server never imports
    psycopg (~20 MiB of RSS), and an error of a module nobody imported cannot occur."""
    psycopg = sys.modules.get("psycopg")
    return tuple(getattr(psycopg, name) for name in names) if psycopg is not None else ()
