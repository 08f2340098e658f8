"""AUARC and the risk–coverage curve: hand-computed cases, the tie rule checked against an explicit average
over every ordering of the tied rows, and the binned form agreeing with rows when each bin holds one value."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from service.calibration.base import CalibrationInputError
from service.calibration.selective import auarc, grouped_auarc, risk_coverage


def brute_auarc(conf: list[float], correct: list[int]) -> float:
    """Average over every ordering of tied rows of (1/N) Σ_i accuracy(top i)."""
    order = sorted(range(len(conf)), key=lambda i: -conf[i])
    groups = [list(g) for _, g in itertools.groupby(order, key=lambda i: conf[i])]
    total, count = 0.0, 0
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        ranked = [correct[i] for g in perm for i in g]
        total += float(np.mean(np.cumsum(ranked) / np.arange(1, len(ranked) + 1)))
        count += 1
    return total / count


def test_auarc_hand_computed() -> None:
    # top-1 accuracy 1, top-2 1/2, top-3 2/3 → (1 + 0.5 + 0.6667)/3
    assert auarc([0.9, 0.8, 0.7], [1, 0, 1]) == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    assert auarc([0.5, 0.9], [1, 1]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_ties_are_averaged_over_every_ordering(seed: int) -> None:
    rng = np.random.default_rng(seed)
    conf = rng.choice([0.6, 0.7, 0.9], size=7).tolist()
    correct = rng.integers(0, 2, size=7).tolist()
    assert auarc(conf, correct) == pytest.approx(brute_auarc(conf, correct))


def test_grouped_form_from_bins() -> None:
    # bins descending in confidence: 2 rows / 2 correct, then 3 rows / 1 correct, then an empty bin
    rows = auarc([0.9, 0.9, 0.5, 0.5, 0.5], [1, 1, 1, 0, 0])
    assert grouped_auarc([2, 3, 0], [2, 1, 0]) == pytest.approx(rows)


def test_risk_coverage_curve() -> None:
    thresholds, coverage, risk = risk_coverage([0.9, 0.8, 0.8, 0.6], [1, 0, 1, 0])
    assert thresholds.tolist() == [0.9, 0.8, 0.6]
    np.testing.assert_allclose(coverage, [0.25, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0.0, 1 / 3, 0.5])


def test_empty_or_bad_input_is_refused() -> None:
    with pytest.raises(CalibrationInputError):
        auarc([], [])
    with pytest.raises(CalibrationInputError):
        auarc([0.5, float("nan")], [1, 0])
    with pytest.raises(CalibrationInputError):
        grouped_auarc([0, 0], [0, 0])
