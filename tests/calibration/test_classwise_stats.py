"""service/calibration/classwise_stats.py: shards add up to the whole, and the table's classwise ECE equals
``metrics.classwise_ece`` on the raw rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.calibration import CalibrationInputError, metrics
from service.calibration.classwise_stats import ClasswiseStats
from tests.calibration.factories import random_probs


@pytest.mark.parametrize("k", [2, 10, 100])
def test_classwise_stats_merge_and_match_metrics(k: int) -> None:
    p, y = random_probs(2400, k, seed=10 + k)
    whole = ClasswiseStats.from_predictions(p, y)
    merged = ClasswiseStats.from_predictions(p[:1000], y[:1000]).merge(
        ClasswiseStats.from_predictions(p[1000:], y[1000:])
    )
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.prob_sum, whole.prob_sum, rtol=1e-12)
    assert merged.n == 2400
    assert merged.classwise_ece() == pytest.approx(metrics.classwise_ece(p, y), abs=1e-12)
    assert whole.per_class_ece().shape == (k,)


def test_json_round_trip_keeps_the_classwise_ece() -> None:
    p, y = random_probs(500, 5, seed=9)
    table = ClasswiseStats.from_predictions(p, y)
    assert ClasswiseStats.from_dict(json.loads(json.dumps(table.to_dict()))).classwise_ece() == table.classwise_ece()


def test_tables_of_different_shapes_do_not_merge() -> None:
    with pytest.raises(CalibrationInputError, match="merge"):
        ClasswiseStats.empty(3) + ClasswiseStats.empty(4)
