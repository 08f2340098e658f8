"""The statistics a batch of labels adds, per (model, version, calibrator version, bucket): hand-computed."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from service.db.predictions import StoredPrediction
from service.monitoring.bucket_stats import bucket_stats


def row(model: str, calibrator: int, at: datetime, p: list[float]) -> StoredPrediction:
    probs = np.asarray(p, dtype=np.float32)
    return StoredPrediction("id", model, 1, calibrator, at, probs, np.log(probs))


def test_rows_group_by_model_calibrator_and_bucket_with_hand_computed_sums() -> None:
    t0 = datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC)
    t1 = datetime(2026, 12, 7, 10, 0, 59, tzinfo=UTC)  # same 60-s bucket
    t2 = datetime(2026, 12, 7, 10, 1, 0, tzinfo=UTC)  # the next one
    rows = [row("a", 1, t0, [0.9, 0.1]), row("a", 1, t1, [0.3, 0.7]), row("a", 1, t2, [0.6, 0.4]),
            row("a", 2, t0, [0.2, 0.8]), row("b", 1, t0, [0.5, 0.5])]
    stats = {s.key: s for s in bucket_stats(rows, [0, 0, 0, 1, 1], bucket_seconds=60, class_bins=5)}
    minute = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert set(stats) == {("a", 1, 1, minute), ("a", 1, 1, t2), ("a", 1, 2, minute), ("b", 1, 1, minute)}
    first = stats[("a", 1, 1, minute)]
    # confidences 0.9 (right) and 0.7 (wrong: the label is 0)
    assert first.n == 2 and first.fine_count.sum() == 2
    assert first.fine_confidence.sum() == pytest.approx(1.6, abs=1e-6)
    assert first.fine_correct.sum() == 1
    assert first.nll_sum == pytest.approx(-math.log(0.9) - math.log(0.3), abs=1e-6)
    assert first.brier_sum == pytest.approx((0.1**2 + 0.1**2) + (0.7**2 + 0.7**2), abs=1e-6)
    assert first.class_count.sum() == 4  # two classes, each row counted once per class
    assert first.class_label.sum() == 2  # class 0 was the label twice
    assert stats[("a", 1, 2, minute)].fine_correct.sum() == 1  # 0.8 on class 1, label 1
    assert stats[("b", 1, 1, minute)].nll_sum == pytest.approx(math.log(2), abs=1e-6)


def test_no_rows_no_statistics() -> None:
    assert bucket_stats([], [], bucket_seconds=60, class_bins=5) == []
