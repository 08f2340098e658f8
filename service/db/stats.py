"""Calibration state in the database: per-bucket sufficient statistics, written and read in O(bins).

Buckets are keyed by the **prediction** time (floored to ``bucket_seconds``), so a label arriving hours
late lands in the window where the prediction was made. Four additive tables per bucket:
``calibration_stats`` (labelled, per fine confidence bin), ``calibration_class_stats``,
``calibration_totals`` and — for label-free monitoring — ``prediction_confidence_stats`` (ALL served
predictions per fine confidence bin, written by the prediction-log writer next to ``prediction_counts``).

Roll-ups (migrations 0004 and 0007, ``service.db.rollups``): each table has a ``…_rollup`` twin holding
10-minute, hour, 6-hour, day and week sums, written by the same additive upsert in the same transaction, so
any window is read from O(log) levels (``service.db.window_sums``) and equals the fine-bucket answer exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    text,
)
from sqlalchemy.orm import Session

from service.calibration.streaming import confidence_histogram
from service.db.engine import sqlite_datetime_text
from service.db.rollups import (
    KEY,
    ROLLUP_KEY,
    ROLLUP_SPANS,
    ROLLUPS,
    as_utc,
    bucket_start,
    quantized,
    rolled_up,
    rollup_ranges,
)
from service.db.tables import (
    CalibrationBin,
    CalibrationClassBin,
    CalibrationTotals,
    PredictionConfidenceBin,
    PredictionCount,
)

__all__ = ["KEY", "as_utc", "bucket_start", "rollup_ranges"]  # re-exported: callers import them from here


@lru_cache(maxsize=64)
def _upsert_sql(table: str, paramstyle: str, columns: tuple[str, ...], keys: tuple[str, ...],
                sums: tuple[str, ...]) -> str:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET s = t.s + excluded.s`` as driver SQL (SQLite and PostgreSQL
    spell it the same), built once per table and column set."""
    mark = "?" if paramstyle == "qmark" else "%s"
    names = ", ".join(f'"{c}"' for c in columns)
    conflict = ", ".join(f'"{k}"' for k in keys)
    marks = ", ".join([mark] * len(columns))
    sets = ", ".join(f'"{c}" = "{table}"."{c}" + excluded."{c}"' for c in sums)
    return f'INSERT INTO "{table}" ({names}) VALUES ({marks}) ON CONFLICT ({conflict}) DO UPDATE SET {sets}'


def _execute_upsert(conn: Connection | Session, table: str, rows: list[dict[str, Any]], keys: tuple[str, ...],
                    sums: tuple[str, ...]) -> None:
    """One driver-level ``executemany`` of plain tuples. Through SQLAlchemy's compiled insert, each call cost
    ~60 µs of statement set-up and every row its parameter processing: a feedback commit makes ~40 of these
    calls (3–5 tables × 6 roll-up levels) and spent more than half of its CPU there."""
    connection = conn.connection() if isinstance(conn, Session) else conn
    dialect = connection.dialect
    columns = tuple(rows[0])
    values = [tuple(r[c] for c in columns) for r in rows]
    if dialect.name == "sqlite":  # datetimes (the bucket) as SQLite text, each distinct one converted once
        for j in [j for j, c in enumerate(columns) if isinstance(rows[0][c], datetime)]:
            text_of: dict[datetime, str] = {}
            for i, v in enumerate(values):
                t = text_of.get(v[j])
                if t is None:
                    t = text_of[v[j]] = sqlite_datetime_text(v[j])
                values[i] = (*v[:j], t, *v[j + 1:])
    connection.exec_driver_sql(_upsert_sql(table, dialect.paramstyle, columns, keys, sums), values)


@dataclass(frozen=True)
class Upsert:
    """One additive upsert, ready to execute: the rows of one table (a fine level or a roll-up level)."""

    table: str
    rows: list[dict[str, Any]]
    keys: tuple[str, ...]
    sums: tuple[str, ...]


def sum_levels(model: Any, rows: list[dict[str, Any]], keys: tuple[str, ...], sums: tuple[str, ...]) -> list[Upsert]:
    """The upserts ``add_sums`` makes, computed without the database: a writer builds them before it takes
    the write lock (on SQLite, one lock for every writer) and holds it only to execute them."""
    if not rows:
        return []
    rollup = ROLLUPS.get(model)
    if rollup is not None:
        rows = quantized(rows, sums)
    rows = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
    out = [Upsert(cast(Table, model.__table__).name, rows, keys, sums)]
    if rollup is None:
        return out
    rollup_keys = (*ROLLUP_KEY, *keys[len(KEY):])
    level = rows
    for span in ROLLUP_SPANS:  # each level summed from the finer one (they nest): fewer rows at every step
        level = rolled_up(level, keys, sums, span)
        summed = sorted(level, key=lambda r: tuple(r[k] for k in rollup_keys))
        out.append(Upsert(cast(Table, rollup.__table__).name, summed, rollup_keys, sums))
    return out


def execute_upserts(conn: Connection | Session, upserts: Iterable[Upsert]) -> None:
    for u in upserts:
        _execute_upsert(conn, u.table, u.rows, u.keys, u.sums)


def add_sums(conn: Connection | Session, model: Any, rows: list[dict[str, Any]], keys: tuple[str, ...],
             sums: tuple[str, ...]) -> None:
    """Additive upsert ``INSERT … ON CONFLICT DO UPDATE SET s = s + excluded.s``: how O(bins) state merges
    (addition is associative, so writers and replicas never read-modify-write). Rows are sorted by key so
    concurrent transactions lock rows in the same order (no deadlocks on PostgreSQL). For a per-bucket table
    the values are put on their 2^-b grid and every roll-up level gets the same sums in the same
    transaction (``service.db.rollups``)."""
    execute_upserts(conn, sum_levels(model, rows, keys, sums))


def prediction_count_upserts(rows: Iterable[dict[str, Any]], bucket_seconds: int) -> list[Upsert]:
    """Per bucket: predictions served (label coverage) and their confidence histogram (label-free drift)."""
    hist: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in rows:
        hist[(r["model"], r["version"], r["calibrator_version"], bucket_start(r["created_at"], bucket_seconds))].append(
            r["confidence"])
    return bucket_count_upserts(hist)


def bucket_count_upserts(confidences: dict[tuple[Any, ...], list[float]]) -> list[Upsert]:
    """``prediction_count_upserts`` from the confidences already grouped by (model, version, calibrator
    version, bucket start): how the ship process builds them, a block (not a row) at a time."""
    bins = []
    for key, values in confidences.items():
        n, s = confidence_histogram(values)
        base = dict(zip(KEY, key, strict=True))
        bins += [{**base, "bin": int(b), "count": float(n[b]), "confidence_sum": float(s[b])}
                 for b in np.flatnonzero(n)]
    counts = [dict(zip(KEY, k, strict=True), count=float(len(v))) for k, v in confidences.items() if v]
    return [*sum_levels(PredictionCount, counts, KEY, ("count",)),
            *sum_levels(PredictionConfidenceBin, bins, (*KEY, "bin"), ("count", "confidence_sum"))]


def add_prediction_counts(conn: Connection, rows: Iterable[dict[str, Any]], bucket_seconds: int) -> None:
    execute_upserts(conn, prediction_count_upserts(rows, bucket_seconds))


@dataclass
class BucketStats:
    """Statistics to add for one (model, version, calibrator_version, bucket)."""

    key: tuple[str, int, int, datetime]
    fine_count: np.ndarray
    fine_confidence: np.ndarray
    fine_correct: np.ndarray
    class_count: np.ndarray  # (K, coarse bins)
    class_prob: np.ndarray
    class_label: np.ndarray
    n: float
    nll_sum: float
    brier_sum: float


def bucket_stat_upserts(stats: list[BucketStats]) -> list[Upsert]:
    bins, classes, totals = [], [], []
    for s in stats:
        base = dict(zip(KEY, s.key, strict=True))
        for b in np.flatnonzero(s.fine_count):
            bins.append({**base, "bin": int(b), "count": float(s.fine_count[b]),
                         "confidence_sum": float(s.fine_confidence[b]), "correct_sum": float(s.fine_correct[b])})
        for k, b in zip(*np.nonzero(s.class_count), strict=True):
            classes.append({**base, "class_index": int(k), "bin": int(b), "count": float(s.class_count[k, b]),
                            "prob_sum": float(s.class_prob[k, b]), "label_sum": float(s.class_label[k, b])})
        totals.append({**base, "count": s.n, "nll_sum": s.nll_sum, "brier_sum": s.brier_sum})
    return [*sum_levels(CalibrationBin, bins, (*KEY, "bin"), ("count", "confidence_sum", "correct_sum")),
            *sum_levels(CalibrationClassBin, classes, (*KEY, "class_index", "bin"), ("count", "prob_sum", "label_sum")),
            *sum_levels(CalibrationTotals, totals, KEY, ("count", "nll_sum", "brier_sum"))]


def add_bucket_stats(session: Session, stats: list[BucketStats]) -> None:
    execute_upserts(session, bucket_stat_upserts(stats))


@dataclass
class WindowRows:
    fine: list[tuple[int, float, float, float]]  # bin, count, Σconfidence, Σcorrect
    classes: list[tuple[int, int, float, float, float]]  # class, bin, count, Σprob, Σlabel
    n: float
    nll_sum: float
    brier_sum: float
    predicted: float
    confidence: list[tuple[int, float, float]]  # ALL predictions: bin, count, Σconfidence


@dataclass(frozen=True)
class Scope:
    """Which state rows a query reads: one model version, one calibrator version (or all: None)."""

    model: str
    version: int
    calibrator_version: int | None

    def params(self, start: datetime, end: datetime) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "cv": self.calibrator_version, "start": start,
                "end": end}


def bound_where(table: Any, all_calibrators: bool) -> list[Any]:
    """The rows of one scope and time range, as bound parameters (``Scope.params``): statements are built
    and keyed once, not per query (that cost ~1 ms of CPU per statement)."""
    cond = [table.model == bindparam("model"), table.version == bindparam("version"),
            table.bucket >= bindparam("start"), table.bucket < bindparam("end")]
    return cond if all_calibrators else [*cond, table.calibrator_version == bindparam("cv")]


def serial_plan(session: Session) -> None:
    """No parallel workers for this transaction (PostgreSQL): on big tables the planner parallelises the small
    index-range aggregates, and starting workers (~10 ms) costs 5× the scan (bench/window_query.py)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    tx = session.get_transaction()
    if tx is not None and session.info.get("serial_plan") is tx:  # set once per transaction (a round trip)
        return
    session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    session.info["serial_plan"] = session.get_transaction()


# the five sums of a window (read by ``service.db.window_sums``), as (tag, table, group keys, summed columns):
# tag 0 fine bins, 1 class-wise bins, 2 totals, 3 predictions served, 4 the confidence histogram of all predictions
PARTS: tuple[tuple[int, Any, tuple[str, ...], tuple[str, ...]], ...] = (
    (0, CalibrationBin, ("bin",), ("count", "confidence_sum", "correct_sum")),
    (1, CalibrationClassBin, ("class_index", "bin"), ("count", "prob_sum", "label_sum")),
    (2, CalibrationTotals, (), ("count", "nll_sum", "brier_sum")),
    (3, PredictionCount, (), ("count",)),
    (4, PredictionConfidenceBin, ("bin",), ("count", "confidence_sum")),
)


def range_params(scope: Scope, ranges: dict[str, tuple[datetime, datetime]]) -> dict[str, Any]:
    """Bound parameters of ``rollups.range_where`` for one scope and the ranges of ``rollup_ranges``."""
    return {"model": scope.model, "version": scope.version, "cv": scope.calibrator_version,
            **{f"{k}_{e}": v[i] for k, v in ranges.items() for i, e in enumerate(("lo", "hi"))}}
