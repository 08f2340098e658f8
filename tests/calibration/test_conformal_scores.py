"""Conformal scores, quantile and sets: hand-computed cases, and the same scores, quantiles and sets as MAPIE 1.6
(``SplitConformalClassifier(prefit=True)`` on the same calibrated probabilities) for LAC and APS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mapie.classification import SplitConformalClassifier
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from service.calibration.base import CalibrationInputError
from service.calibration.conformal_scores import (
    aps_scores,
    check_coverage,
    conformal_quantile,
    conformal_rank,
    lac_scores,
    mass_above,
    prediction_sets,
)
from tests.calibration.factories import sample_labels, softmax


class Passthrough(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A "prefit" classifier whose input is already the calibrated probability matrix."""

    def fit(self, x: NDArray[np.float64], y: NDArray[np.int64]) -> Passthrough:
        self.classes_ = np.arange(x.shape[1])
        return self

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(x, dtype=np.float64)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.asarray(x).argmax(axis=1)


def calibrated_world(n: int, k: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(size=(n, k)) * 2.0)
    return probs, sample_labels(softmax(np.log(probs) * 1.3), rng)  # labels from a sharper model: miscalibrated


def test_rank_and_quantile_hand_computed() -> None:
    assert conformal_rank(99, 0.9) == 90  # (99+1)·0.9 = 90 exactly, despite 0.9 being 0.90000000000000002
    assert conformal_rank(100, 0.9) == 91  # ⌈90.9⌉
    assert conformal_rank(9, 0.9) == 9
    scores = np.arange(1, 11) / 10.0  # 0.1 … 1.0, n = 10
    assert conformal_quantile(scores, 0.8) == 0.9  # k = ⌈11·0.8⌉ = 9 → the 9th smallest
    assert conformal_quantile(scores, 0.5) == 0.6  # k = ⌈5.5⌉ = 6
    assert conformal_quantile(scores[:8], 0.9) == math.inf  # k = ⌈8.1⌉ = 9 > 8: the full set


def test_mass_above_and_scores_hand_computed() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.2, 0.4, 0.4]])
    np.testing.assert_allclose(mass_above(p), [[0.0, 0.5, 0.8], [0.8, 0.0, 0.0]])  # ties share the mass above
    y = np.array([1, 0])
    np.testing.assert_allclose(lac_scores(p, y), [0.7, 0.8])
    np.testing.assert_allclose(aps_scores(p, y), [0.8, 1.0])  # u = 1: cumulative mass including the label
    np.testing.assert_allclose(aps_scores(p, y, np.array([0.5, 0.25])), [0.65, 0.85])


def test_sets_hand_computed() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.05, 0.9, 0.05]])
    q = np.full(3, 0.6)
    assert prediction_sets(p, q, "lac").tolist() == [[True, False, False], [False, True, False]]  # p ≥ 0.4
    # APS adds classes by decreasing p up to the one whose cumulative mass reaches 0.6
    assert prediction_sets(p, q, "aps").tolist() == [[True, True, False], [False, True, False]]
    assert prediction_sets(p, np.full(3, 0.05), "lac").tolist()[0] == [False, False, False]  # LAC may be empty
    assert prediction_sets(p, np.full(3, math.inf), "aps").all()
    mondrian = np.array([0.6, 0.6, 0.85])  # per-class thresholds: class 2 (1 − 0.2 = 0.8 ≤ 0.85) joins
    assert prediction_sets(p, mondrian, "lac").tolist()[0] == [True, False, True]


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), float("inf"), True, "0.9"])
def test_coverage_outside_the_open_interval_is_refused(bad: object) -> None:
    with pytest.raises(CalibrationInputError, match="coverage must be a number strictly between 0 and 1"):
        check_coverage(bad)  # type: ignore[arg-type]


CASES = [(200, 5, 0), (500, 10, 1), (57, 3, 2), (1000, 20, 3)]


# MAPIE allows only LAC for a binary target, hence the extra binary case for LAC alone
@pytest.mark.parametrize(("score", "n", "k", "seed"),
                         [("lac", *c) for c in [*CASES, (300, 2, 4)]] + [("aps", *c) for c in CASES])
def test_same_scores_quantiles_and_sets_as_mapie(score: str, n: int, k: int, seed: int) -> None:
    probs, labels = calibrated_world(n + 400, k, seed)
    levels = [0.5, 0.8, 0.9, 0.95]
    mapie = SplitConformalClassifier(estimator=Passthrough().fit(probs, labels), confidence_level=levels,
                                     conformity_score=score, prefit=True, random_state=seed)
    mapie.conformalize(probs[:n], labels[:n])
    _, mapie_sets = mapie.predict_set(probs[n:])
    mapie_quantiles = mapie._mapie_classifier.conformity_score_function_.quantiles_

    if score == "lac":
        ours = lac_scores(probs[:n], labels[:n])
    else:  # MAPIE's APS score is cumsum − v·p_y with v = RandomState(seed).uniform: our u = 1 − v
        ours = aps_scores(probs[:n], labels[:n], 1.0 - np.random.RandomState(seed).uniform(size=n))
    np.testing.assert_allclose(ours, np.asarray(mapie.conformity_scores).ravel(), atol=1e-12)
    for j, level in enumerate(levels):
        q = conformal_quantile(np.sort(ours), level)
        assert q == pytest.approx(mapie_quantiles[j], abs=1e-12)
        sets = prediction_sets(probs[n:], np.full(k, q), score)  # type: ignore[arg-type]
        assert np.array_equal(sets, mapie_sets[:, :, j]), f"{score} sets differ at coverage {level}"
