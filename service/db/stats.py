"""Calibration state in the database: per-bucket sufficient statistics, written and read in O(bins).

Buckets are keyed by the **prediction** time (floored to ``bucket_seconds``), so a label arriving hours
late lands in the window where the prediction was made. Four additive tables per bucket:
``calibration_stats`` (labelled, per fine confidence bin), ``calibration_class_stats``,
``calibration_totals`` and — for label-free monitoring — ``prediction_confidence_stats`` (ALL served
predictions per fine confidence bin, written by the prediction-log writer next to ``prediction_counts``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    Connection,
    Float,
    Table,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.calibration.streaming import confidence_histogram
from service.db.tables import (
    CalibrationBin,
    CalibrationClassBin,
    CalibrationTotals,
    PredictionConfidenceBin,
    PredictionCount,
)

KEY = ("model", "version", "calibrator_version", "bucket")


@lru_cache(maxsize=32)
def _upsert(tbl: Table, dialect: str, keys: tuple[str, ...], sums: tuple[str, ...]) -> Any:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET s = s + excluded.s``, built once per table: building it
    (and its cache key) per call cost ~0.7 ms of CPU, more than executing it for a single label."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(tbl)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={s: tbl.c[s] + stmt.excluded[s] for s in sums})


def add_sums(conn: Connection | Session, model: Any, rows: list[dict[str, Any]], keys: tuple[str, ...],
             sums: tuple[str, ...]) -> None:
    """Additive upsert ``INSERT … ON CONFLICT DO UPDATE SET s = s + excluded.s``: how O(bins) state merges
    (addition is associative, so writers and replicas never read-modify-write). Rows are sorted by key so
    concurrent transactions lock rows in the same order (no deadlocks on PostgreSQL)."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    conn.execute(_upsert(cast(Table, model.__table__), bind.dialect.name, keys, sums), rows)


def as_utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def bucket_start(dt: datetime, seconds: int) -> datetime:
    ts = as_utc(dt).timestamp()
    return datetime.fromtimestamp(ts - ts % seconds, tz=UTC)


def add_prediction_counts(conn: Connection, rows: Iterable[dict[str, Any]], bucket_seconds: int) -> None:
    """Per bucket: predictions served (label coverage) and their confidence histogram (label-free drift)."""
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    hist: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in rows:
        key = (r["model"], r["version"], r["calibrator_version"], bucket_start(r["created_at"], bucket_seconds))
        counts[key] += 1
        hist[key].append(r["confidence"])
    add_sums(conn, PredictionCount, [dict(zip(KEY, k, strict=True), count=float(n)) for k, n in counts.items()],
             KEY, ("count",))
    bins = []
    for key, values in hist.items():
        n, s = confidence_histogram(values)
        base = dict(zip(KEY, key, strict=True))
        bins += [{**base, "bin": int(b), "count": float(n[b]), "confidence_sum": float(s[b])}
                 for b in np.flatnonzero(n)]
    add_sums(conn, PredictionConfidenceBin, bins, (*KEY, "bin"), ("count", "confidence_sum"))


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


def add_bucket_stats(session: Session, stats: list[BucketStats]) -> None:
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
    add_sums(session, CalibrationBin, bins, (*KEY, "bin"), ("count", "confidence_sum", "correct_sum"))
    add_sums(session, CalibrationClassBin, classes, (*KEY, "class_index", "bin"), ("count", "prob_sum", "label_sum"))
    add_sums(session, CalibrationTotals, totals, KEY, ("count", "nll_sum", "brier_sum"))


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
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


@lru_cache(maxsize=2)
def _window_sums(all_calibrators: bool) -> Any:
    """The five sums of a window as one UNION ALL (a tag, two keys, three sums per row): one round trip."""
    fb, cb, tt = CalibrationBin, CalibrationClassBin, CalibrationTotals
    pc, cf = PredictionCount, PredictionConfidenceBin
    zero_i: Any = literal_column("0")
    zero_f: Any = literal(0.0, Float)

    def part(tag: int, table: Any, keys: list[Any], sums: list[Any]) -> Any:
        cols = [*keys, *[zero_i] * (2 - len(keys)), *[func.sum(c) for c in sums], *[zero_f] * (3 - len(sums))]
        return select(literal_column(str(tag)), *cols).where(*bound_where(table, all_calibrators)).group_by(*keys)

    return union_all(
        part(0, fb, [fb.bin], [fb.count, fb.confidence_sum, fb.correct_sum]),
        part(1, cb, [cb.class_index, cb.bin], [cb.count, cb.prob_sum, cb.label_sum]),
        part(2, tt, [], [tt.count, tt.nll_sum, tt.brier_sum]),
        part(3, pc, [], [pc.count]),
        part(4, cf, [cf.bin], [cf.count, cf.confidence_sum]),
    )


def read_window(
    session: Session, *, model: str, version: int, calibrator_version: int | None, start: datetime, end: datetime
) -> WindowRows:
    """Sum the buckets in [start, end): cost is buckets × bins, independent of how many rows are stored."""
    scope = Scope(model, version, calibrator_version)
    serial_plan(session)
    rows = session.execute(_window_sums(calibrator_version is None), scope.params(start, end)).all()
    fine: list[Any] = []
    classes: list[Any] = []
    confidence: list[Any] = []
    n = nll = brier = predicted = 0.0
    for tag, k1, k2, a, b, c in rows:
        if tag == 0:
            fine.append((int(k1), float(a), float(b), float(c)))
        elif tag == 1:
            classes.append((int(k1), int(k2), float(a), float(b), float(c)))
        elif tag == 2:
            n, nll, brier = float(a or 0.0), float(b or 0.0), float(c or 0.0)  # SUM over no rows is NULL
        elif tag == 3:
            predicted = float(a or 0.0)
        else:
            confidence.append((int(k1), float(a), float(b)))
    return WindowRows(fine, classes, n, nll, brier, predicted, confidence)


def window_index(column: Any, edges: list[datetime]) -> Any:
    """SQL expression: the i with edges[i] ≤ column < edges[i + 1], as a balanced CASE tree (depth
    log2(#windows); portable across SQLite and PostgreSQL, unlike epoch arithmetic on timestamps)."""

    def tree(lo: int, hi: int) -> Any:  # windows lo..hi-1
        if hi - lo == 1:
            return literal_column(str(lo))
        mid = (lo + hi) // 2
        return case((column < edges[mid], tree(lo, mid)), else_=tree(mid, hi))

    return tree(0, len(edges) - 1)


@dataclass
class WindowsRows:
    """Several consecutive windows summed in SQL in one round trip per table (time series, references)."""

    fine: list[tuple[int, int, float, float, float]]  # window, bin, count, Σconfidence, Σcorrect
    predicted: list[tuple[int, float]]  # window, count
    confidence: list[tuple[int, int, float, float]]  # window, bin, count, Σconfidence (all predictions)


def read_windows(session: Session, scope: Scope, edges: list[datetime]) -> WindowsRows:
    """Sum buckets into the windows [edges[i], edges[i+1]); cost: buckets × bins, scanned once."""
    fb, pc, cf = CalibrationBin, PredictionCount, PredictionConfidenceBin
    start, end = edges[0], edges[-1]

    def grouped(table: Any, *cols: Any, by_bin: bool = True) -> list[Any]:
        # window index computed in a subquery: PostgreSQL would not match a GROUP BY expression whose
        # bound parameters differ from the SELECT's, so the outer query groups by the plain column
        inner = select(window_index(table.bucket, edges).label("win"), *([table.bin] if by_bin else []),
                       *cols).where(*bound_where(table, scope.calibrator_version is None)).subquery()
        keys = [inner.c.win, inner.c.bin] if by_bin else [inner.c.win]
        sums = [func.sum(inner.c[c.key]) for c in cols]
        return [tuple(r) for r in session.execute(select(*keys, *sums).group_by(*keys), scope.params(start, end))]

    serial_plan(session)
    return WindowsRows(
        grouped(fb, fb.count, fb.confidence_sum, fb.correct_sum),
        grouped(pc, pc.count, by_bin=False),
        grouped(cf, cf.count, cf.confidence_sum),
    )


@lru_cache(maxsize=2)
def _fingerprint(all_calibrators: bool) -> Any:
    tt, pc = CalibrationTotals, PredictionCount
    return select(
        select(func.coalesce(func.sum(tt.count), 0.0)).where(*bound_where(tt, all_calibrators)).scalar_subquery(),
        select(func.coalesce(func.sum(pc.count), 0.0)).where(*bound_where(pc, all_calibrators)).scalar_subquery(),
        select(func.count()).select_from(tt).where(*bound_where(tt, all_calibrators)).scalar_subquery(),
    )


def totals_fingerprint(session: Session, scope: Scope, start: datetime, end: datetime) -> tuple[float, float, int]:
    """(Σ labelled, Σ predicted, labelled buckets) in [start, end): one row per bucket, one round trip."""
    serial_plan(session)
    stmt = _fingerprint(scope.calibrator_version is None)
    labelled, predicted, buckets = session.execute(stmt, scope.params(start, end)).one()
    return float(labelled), float(predicted), int(buckets)
