"""Queries on the prediction log: look rows up for feedback, read labelled logits for a re-fit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from service.db.stats import as_utc
from service.db.tables import Feedback, Prediction

LOOKUP_CHUNK = 1000


@dataclass(frozen=True)
class StoredPrediction:
    """What feedback needs of a served prediction: where its statistics go and what it said."""

    id: str
    model: str
    version: int
    calibrator_version: int
    created_at: datetime
    probabilities: np.ndarray  # (K,) float32, as served
    logits: np.ndarray  # (K,) float32, raw (shadow calibrators re-score these)


def find_predictions(*, session: Session, ids: list[str]) -> dict[str, StoredPrediction]:
    """The stored predictions among ``ids`` (missing ids are simply absent)."""
    out: dict[str, StoredPrediction] = {}
    postgres = session.get_bind().dialect.name == "postgresql"
    columns = (Prediction.id, Prediction.model, Prediction.version, Prediction.calibrator_version,
               Prediction.created_at, Prediction.probabilities, Prediction.logits)
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start:start + LOOKUP_CHUNK]
        # PostgreSQL: one array parameter (= ANY) instead of 1,000 expanded IN parameters
        match = (Prediction.id == any_(bindparam("ids", chunk, type_=postgresql.ARRAY(String))) if postgres
                 else Prediction.id.in_(chunk))
        for pid, model, version, cv, created, probs, logits in session.execute(select(*columns).where(match)):
            out[pid] = StoredPrediction(pid, model, version, cv, as_utc(created), np.frombuffer(probs, dtype="<f4"),
                                        np.frombuffer(logits, dtype="<f4"))
    return out


def labelled_logits(
    *, session: Session, model: str, version: int, start: datetime | None = None, end: datetime | None = None,
    last_n: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(logits (n, K) float64, labels (n,)) of labelled predictions of one version, newest first."""
    q = (select(Prediction.logits, Feedback.label).join(Feedback, Feedback.prediction_id == Prediction.id)
         .where(Prediction.model == model, Prediction.version == version)
         .order_by(Prediction.created_at.desc()))
    if start is not None:
        q = q.where(Prediction.created_at >= start)
    if end is not None:
        q = q.where(Prediction.created_at < end)
    if last_n is not None:
        q = q.limit(last_n)
    rows = session.execute(q).all()
    if not rows:
        return np.empty((0, 0)), np.empty(0, dtype=np.int64)
    logits = np.stack([np.frombuffer(b, dtype="<f4") for b, _ in rows]).astype(np.float64)
    return logits, np.asarray([lab for _, lab in rows], dtype=np.int64)
