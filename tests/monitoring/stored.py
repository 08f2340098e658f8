"""Rows written straight into the database — the way another replica's prediction writer would — and
read back raw, so window metrics can be checked against the calibration core on the stored rows."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import uuid_utils
from sqlalchemy import Engine, func, select

from service.db.stats import as_utc, bucket_start
from service.db.tables import CalibrationBin, CalibrationClassBin, CalibrationTotals, Feedback, Prediction
from service.db.writer import PredictionBlock, PredictionWriter

N_CLASSES = 10  # the digits model


def synthetic_probs(n: int, *, seed: int, scale: float = 3.0, sharpen: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, 10) float32, labels): softmax of random logits, labels drawn from a sharper softmax,
    so the stored confidences are miscalibrated (ECE clearly > 0) and spread over many bins."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, N_CLASSES)) * scale
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    q = np.exp(z / sharpen - (z / sharpen).max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    labels = np.minimum((q.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), N_CLASSES - 1)
    return p.astype("<f4"), labels.astype(np.int64)


def store_predictions(
    engine: Engine, probs: np.ndarray, created_at: datetime | Sequence[datetime], *, model: str = "digits",
    version: int = 1, calibrator_version: int = 1, bucket_seconds: int = 60,
) -> list[str]:
    """Write prediction rows with the given (past) prediction times through a real writer; returns ids."""
    times = [created_at] * len(probs) if isinstance(created_at, datetime) else list(created_at)
    probs32 = np.asarray(probs, dtype="<f4")
    ids = [str(uuid_utils.uuid7()) for _ in range(len(probs32))]
    by_time: dict[datetime, list[int]] = defaultdict(list)
    for i, t in enumerate(times):
        by_time[t].append(i)
    spool = Path(tempfile.mkdtemp(prefix="calibserve-spool-"))
    writer = PredictionWriter(engine, spool_dir=spool, bucket_seconds=bucket_seconds, flush_seconds=0.01)
    writer.start()
    for t, rows in by_time.items():  # one block per prediction time, as one request would hand over
        p = probs32[rows]
        writer.submit(PredictionBlock(
            model=model, version=version, calibrator_version=calibrator_version, created_at=t,
            ids=[ids[i] for i in rows], logits=np.log(np.maximum(p, 1e-30)).astype("<f4"), probabilities=p,
            confidence=p.max(axis=1), class_index=p.argmax(axis=1)))
    assert writer.flush()
    writer.stop()
    assert writer.dropped == 0 and not list(spool.glob("*/*.db")) and not list(spool.glob("*.db"))
    return ids


def raw_labelled(
    engine: Engine, *, start: datetime, end: datetime, bucket_seconds: int = 60, model: str = "digits",
    version: int = 1, calibrator_version: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, K) float64, labels (n,)) of labelled predictions whose bucket lies in [start, end),
    decoded from the stored float32 blobs joined with ``feedback.label``."""
    stmt = (select(Prediction.probabilities, Prediction.created_at, Prediction.calibrator_version, Feedback.label)
            .join(Feedback, Feedback.prediction_id == Prediction.id)
            .where(Prediction.model == model, Prediction.version == version)
            .order_by(Prediction.id))
    probs, labels = [], []
    with engine.connect() as conn:
        for blob, created, cv, label in conn.execute(stmt):
            if calibrator_version is not None and cv != calibrator_version:
                continue
            if start <= bucket_start(as_utc(created), bucket_seconds) < end:
                probs.append(np.frombuffer(blob, dtype="<f4").astype(np.float64))
                labels.append(label)
    return np.asarray(probs).reshape(-1, N_CLASSES), np.asarray(labels, dtype=np.int64)


def state_totals(engine: Engine) -> dict[str, float]:
    """Row and sum totals of every state table (equal before and after a no-op)."""
    with engine.connect() as conn:
        return {
            "feedback": conn.scalar(select(func.count()).select_from(Feedback)) or 0,
            "bin_count": conn.scalar(select(func.coalesce(func.sum(CalibrationBin.count), 0))) or 0.0,
            "bin_confidence": conn.scalar(select(func.coalesce(func.sum(CalibrationBin.confidence_sum), 0))) or 0.0,
            "bin_correct": conn.scalar(select(func.coalesce(func.sum(CalibrationBin.correct_sum), 0))) or 0.0,
            "class_count": conn.scalar(select(func.coalesce(func.sum(CalibrationClassBin.count), 0))) or 0.0,
            "totals_count": conn.scalar(select(func.coalesce(func.sum(CalibrationTotals.count), 0))) or 0.0,
            "nll_sum": conn.scalar(select(func.coalesce(func.sum(CalibrationTotals.nll_sum), 0))) or 0.0,
        }
