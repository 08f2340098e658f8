"""SplitConformal: JSON round trip, bad input, and the coverage guarantee over many random calibration sets.

Tolerance: over calibration sets of size n, the realised coverage of a tie-free split-conformal set is
Beta(n + 1 − l, l) with l = ⌊(n + 1)α⌋ (Vovk 2012; Angelopoulos & Bates 2021 §3.2), so its mean is exactly
(n + 1 − l)/(n + 1). Each seed's coverage is measured on m fresh rows (binomial noise on top). The mean over
S seeds must be within 4 standard errors of that — a false failure has probability ≈ 6·10⁻⁵.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from numpy.typing import NDArray

from service.calibration.base import CalibrationInputError, NotFittedError
from service.calibration.conformal import SplitConformal, conformal_from_dict
from tests.calibration.factories import sample_labels, softmax

SEEDS, N_CAL, M_TEST, K = 300, 100, 400, 5


def world(n: int, rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Continuous probabilities (tie-free scores) and labels from a sharper model: the served p is miscalibrated."""
    probs = softmax(rng.normal(size=(n, K)) * 2.0 + np.array([0.8, 0.4, 0.0, -0.4, -0.8]))
    return probs, sample_labels(softmax(np.log(probs) * 1.3), rng)


def realised(score: str, mondrian: bool, coverage: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per seed: marginal coverage (S,) and per-class coverage (S, K) on fresh rows."""
    marginal, per_class = np.empty(SEEDS), np.full((SEEDS, K), np.nan)
    for s in range(SEEDS):
        rng = np.random.default_rng(1000 + s)
        p_cal, y_cal = world(N_CAL, rng)
        p, y = world(M_TEST, rng)
        sets = SplitConformal(score=score, mondrian=mondrian, seed=s).fit(p_cal, y_cal).predict_set(p, coverage)  # type: ignore[arg-type]
        hit = sets[np.arange(M_TEST), y]
        marginal[s] = hit.mean()
        for c in range(K):
            if (y == c).any():
                per_class[s, c] = hit[y == c].mean()
    return marginal, per_class


def beta_mean_and_se(n: int, alpha: float, m: int) -> tuple[float, float]:
    l_ = math.floor((n + 1) * alpha)
    a, b = n + 1 - l_, l_
    mean = a / (a + b)
    var_beta = a * b / ((a + b) ** 2 * (a + b + 1))
    return mean, math.sqrt((var_beta + mean * (1 - mean) / m) / SEEDS)


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_lac_coverage_matches_the_finite_sample_distribution(coverage: float) -> None:
    marginal, _ = realised("lac", False, coverage)
    mean, se = beta_mean_and_se(N_CAL, 1 - coverage, M_TEST)
    assert abs(marginal.mean() - mean) <= 4 * se, (marginal.mean(), mean, se)
    assert marginal.mean() <= coverage + 1 / (N_CAL + 1) + 4 * se  # and never much more than 1 − α + 1/(n+1)


def test_aps_coverage_is_at_least_the_target() -> None:
    # the served APS set (last label included) contains the randomised one: coverage ≥ 1 − α, not exact
    marginal, _ = realised("aps", False, 0.9)
    mean, se = beta_mean_and_se(N_CAL, 0.1, M_TEST)
    assert marginal.mean() >= mean - 4 * se


@pytest.mark.parametrize("score", ["lac", "aps"])
def test_mondrian_covers_every_class(score: str) -> None:
    marginal, per_class = realised(score, True, 0.9)
    class_means = np.nanmean(per_class, axis=0)
    # ≈ N_CAL/K = 20 calibration rows per class: the per-class Beta mean is ≥ 0.9, its SE over seeds ≈ 0.005
    assert (class_means >= 0.9 - 0.02).all(), class_means
    plain = realised(score, False, 0.9)[1]
    assert np.nanmean(plain, axis=0).min() < class_means.min()  # marginal sets under-cover some class


def test_json_round_trip_gives_the_same_sets() -> None:
    rng = np.random.default_rng(0)
    p, y = world(300, rng)
    for score in ("lac", "aps"):
        for mondrian in (False, True):
            fitted = SplitConformal(score=score, mondrian=mondrian, seed=7).fit(p[:200], y[:200])  # type: ignore[arg-type]
            again = conformal_from_dict(json.loads(json.dumps(fitted.to_dict())))
            assert np.array_equal(again.predict_set(p[200:], 0.9), fitted.predict_set(p[200:], 0.9))
            assert again.n_fit == 200 and sum(again.group_sizes()) == 200


def test_mondrian_class_without_calibration_rows_is_always_in_the_set() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    fitted = SplitConformal(score="lac", mondrian=True).fit(p, np.array([0, 0, 1, 1]))
    q = fitted.thresholds(0.5)  # class 0: scores 0.3, 0.4, k = ⌈1.5⌉ = 2 → 0.4; class 2 has no rows → +∞
    assert q.tolist() == pytest.approx([0.4, 0.3, math.inf])
    assert fitted.predict_set(np.array([[0.05, 0.05, 0.9]]), 0.5).tolist() == [[False, False, True]]


def test_bad_input_is_refused() -> None:
    with pytest.raises(NotFittedError):
        SplitConformal().predict_set(np.eye(3), 0.9)
    with pytest.raises(CalibrationInputError, match="unknown conformal score"):
        SplitConformal(score="raps")  # type: ignore[arg-type]
    fitted = SplitConformal().fit(np.array([[0.6, 0.4], [0.3, 0.7]]), np.array([0, 1]))
    with pytest.raises(CalibrationInputError, match="coverage"):
        fitted.predict_set(np.array([[0.5, 0.5]]), 1.0)
    with pytest.raises(CalibrationInputError, match=r"shape \(n, 2\)"):
        fitted.predict_set(np.array([[0.5, 0.3, 0.2]]), 0.9)
    with pytest.raises(CalibrationInputError):
        conformal_from_dict({"method": "split_conformal", "params": {"score": "lac", "mondrian": False}})
    with pytest.raises(CalibrationInputError, match="finite"):
        conformal_from_dict({"method": "split_conformal", "params": {
            "score": "lac", "mondrian": False, "n_classes": 2, "scores": [[0.1, float("nan")]]}})
