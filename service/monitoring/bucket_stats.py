"""The calibration statistics a batch of new labels adds, per (model, version, calibrator_version, bucket of
the prediction's time): numpy in, ``BucketStats`` out; the feedback transaction upserts them."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import numpy as np

from service.calibration import streaming
from service.calibration.classwise_stats import ClasswiseStats
from service.db.predictions import StoredPrediction
from service.db.stats import BucketStats, bucket_start


def bucket_stats(rows: list[StoredPrediction], labels: list[int], bucket_seconds: int,
                 class_bins: int) -> list[BucketStats]:
    """The statistics to add per (model, version, calibrator_version, prediction-time bucket)."""
    groups: dict[tuple[str, int, int, datetime], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[(r.model, r.version, r.calibrator_version, bucket_start(r.created_at, bucket_seconds))].append(i)
    out = []
    for key, idx in groups.items():
        probs = np.stack([rows[i].probabilities for i in idx]).astype(np.float64)
        y = np.asarray([labels[i] for i in idx])
        fine = streaming.BinStats.from_predictions(probs, y)
        cls = ClasswiseStats.from_predictions(probs, y, n_bins=class_bins)
        out.append(BucketStats(key, fine.count, fine.confidence_sum, fine.correct_sum, cls.count, cls.prob_sum,
                               cls.label_sum, float(len(idx)), float(fine.nll_sum), float(fine.brier_sum)))
    return out
