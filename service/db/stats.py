"""Calibration state in the database: per-bucket sufficient statistics, written and read in O(bins).

Buckets are keyed by the **prediction** time (floored to ``bucket_seconds``), so a label arriving hours
late lands in the window where the prediction was made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from service.db.tables import CalibrationBin, CalibrationClassBin, CalibrationTotals, PredictionCount
from service.db.upsert import add_rows

KEY = ("model", "version", "calibrator_version", "bucket")


def as_utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def bucket_start(dt: datetime, seconds: int) -> datetime:
    ts = as_utc(dt).timestamp()
    return datetime.fromtimestamp(ts - ts % seconds, tz=UTC)


def add_prediction_counts(conn: Connection, rows: Iterable[dict[str, Any]], bucket_seconds: int) -> None:
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for r in rows:
        counts[(r["model"], r["version"], r["calibrator_version"], bucket_start(r["created_at"], bucket_seconds))] += 1
    add_rows(
        conn, PredictionCount.__table__, [dict(zip(KEY, k, strict=True), count=float(n)) for k, n in counts.items()],
        KEY, ["count"],
    )


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
    add_rows(session, CalibrationBin.__table__, bins, (*KEY, "bin"), ["count", "confidence_sum", "correct_sum"])
    add_rows(session, CalibrationClassBin.__table__, classes, (*KEY, "class_index", "bin"),
             ["count", "prob_sum", "label_sum"])
    add_rows(session, CalibrationTotals.__table__, totals, KEY, ["count", "nll_sum", "brier_sum"])


@dataclass
class WindowRows:
    fine: list[tuple[int, float, float, float]]  # bin, count, Σconfidence, Σcorrect
    classes: list[tuple[int, int, float, float, float]]  # class, bin, count, Σprob, Σlabel
    n: float
    nll_sum: float
    brier_sum: float
    predicted: float


def read_window(
    session: Session, *, model: str, version: int, calibrator_version: int | None, start: datetime, end: datetime
) -> WindowRows:
    """Sum the buckets in [start, end): cost is buckets × bins, independent of how many rows are stored."""

    def scope(table: Any) -> list[Any]:
        cond = [table.model == model, table.version == version, table.bucket >= start, table.bucket < end]
        if calibrator_version is not None:
            cond.append(table.calibrator_version == calibrator_version)
        return cond

    fine = session.execute(
        select(CalibrationBin.bin, func.sum(CalibrationBin.count), func.sum(CalibrationBin.confidence_sum),
               func.sum(CalibrationBin.correct_sum)).where(*scope(CalibrationBin)).group_by(CalibrationBin.bin)
    ).all()
    classes = session.execute(
        select(CalibrationClassBin.class_index, CalibrationClassBin.bin, func.sum(CalibrationClassBin.count),
               func.sum(CalibrationClassBin.prob_sum), func.sum(CalibrationClassBin.label_sum))
        .where(*scope(CalibrationClassBin)).group_by(CalibrationClassBin.class_index, CalibrationClassBin.bin)
    ).all()
    n, nll, brier = session.execute(
        select(func.coalesce(func.sum(CalibrationTotals.count), 0.0),
               func.coalesce(func.sum(CalibrationTotals.nll_sum), 0.0),
               func.coalesce(func.sum(CalibrationTotals.brier_sum), 0.0)).where(*scope(CalibrationTotals))
    ).one()
    predicted = session.scalar(
        select(func.coalesce(func.sum(PredictionCount.count), 0.0)).where(*scope(PredictionCount))
    )
    return WindowRows(
        [tuple(r) for r in fine], [tuple(r) for r in classes], float(n), float(nll), float(brier),
        float(predicted or 0.0),
    )
