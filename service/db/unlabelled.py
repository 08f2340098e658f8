"""Served probabilities read back from the prediction log, for estimates that need no labels (label shift)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from service.db.tables import Feedback, Prediction


def served_probabilities(
    *, session: Session, model: str, version: int, calibrator_version: int, start: datetime, end: datetime,
    limit: int, unlabelled_only: bool = True, newest_first: bool = True,
) -> np.ndarray:
    """(m ≤ limit, K) float64 calibrated probabilities served by one calibrator in [start, end), newest (or
    oldest) first; ``unlabelled_only`` leaves out predictions that already have feedback. Uses the
    (model, version, created_at) index; the probabilities are the stored float32 vectors."""
    p = Prediction
    cond = [p.model == model, p.version == version, p.calibrator_version == calibrator_version,
            p.created_at >= start, p.created_at < end]
    if unlabelled_only:
        cond.append(~exists().where(Feedback.prediction_id == p.id))
    order = p.created_at.desc() if newest_first else p.created_at.asc()
    blobs = session.scalars(select(p.probabilities).where(*cond).order_by(order).limit(limit)).all()
    if not blobs:
        return np.zeros((0, 0))
    return np.stack([np.frombuffer(b, dtype="<f4") for b in blobs]).astype(np.float64)
