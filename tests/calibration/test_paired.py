"""Paired shadow-vs-active comparison: the t interval against scipy's ttest_rel, loss differences against
scikit-learn's log_loss / a hand-computed Brier, and the promotion rule by simulation (a truly better
shadow is promoted within a bounded number of labels; an equal one never, over many runs)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import log_loss

from service.calibration.paired import PairedSums, improvement_lower_bound, loss_differences, paired_interval
from service.calibration.temperature import TemperatureScaling

CLIP = 2.0


def test_paired_interval_equals_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.gamma(2.0, 0.3, 400), rng.gamma(2.0, 0.28, 400)
    s = PairedSums.of(a[:250] - b[:250], CLIP) + PairedSums.of(a[250:] - b[250:], CLIP)  # two buckets add
    mean, lo, hi = paired_interval(s, alpha=0.1)
    ci = stats.ttest_rel(a, b).confidence_interval(confidence_level=0.9)
    assert mean == pytest.approx(float(np.mean(a - b)), abs=1e-12)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-10)


def test_loss_differences_against_sklearn() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 4)) * 2
    y = rng.integers(0, 4, 300)
    pa = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ps = np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)
    nll, brier = loss_differences(pa, ps, y)
    assert nll.mean() == pytest.approx(log_loss(y, pa, labels=range(4)) - log_loss(y, ps, labels=range(4)),
                                       abs=1e-12)
    onehot = np.eye(4)[y]
    assert brier[7] == pytest.approx(((pa[7] - onehot[7]) ** 2).sum() - ((ps[7] - onehot[7]) ** 2).sum())


def _world(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose calibrated temperature is 2: labels drawn from softmax(z / 2)."""
    z = rng.normal(size=(n, 5)) * 3
    p = np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)
    return z, np.minimum((p.cumsum(1) < rng.random((n, 1))).sum(1), 4)


def _labels_to_promotion(active: TemperatureScaling, shadow: TemperatureScaling, rng: np.random.Generator,
                         horizon: int, step: int = 100) -> float:
    z, y = _world(horizon, rng)
    nll, _ = loss_differences(active.predict_proba(z), shadow.predict_proba(z), y)
    for t in range(step, horizon + 1, step):
        if improvement_lower_bound(PairedSums.of(nll[:t], CLIP), clip=CLIP, alpha=0.05) > 0:
            return float(t)
    return float("inf")


def _fixed(temperature: float) -> TemperatureScaling:
    cal = TemperatureScaling()
    cal.temperature_ = temperature
    return cal


def test_a_better_shadow_is_promoted_and_an_equal_one_never() -> None:
    rng = np.random.default_rng(2)
    wrong, right = _fixed(1.0), _fixed(2.0)  # the active calibrator is wrong (T = 1 for a T = 2 world)
    delays = [_labels_to_promotion(wrong, right, rng, 6_000) for _ in range(20)]
    # measured (seed 2): median ~2,200 labels, max ~3,000 — Hoeffding at B = 2 is conservative
    assert max(delays) <= 6_000
    equal = [_labels_to_promotion(right, _fixed(2.0), rng, 3_000) for _ in range(50)]
    assert all(d == float("inf") for d in equal)  # identical calibrators: every difference is 0
    # a shadow only slightly different from a correct active one (T = 2.1) is worse, never promoted
    worse = [_labels_to_promotion(right, _fixed(2.1), rng, 3_000) for _ in range(30)]
    assert all(d == float("inf") for d in worse)
