"""Coverage CI, floor and alarm: Clopper–Pearson against scipy's binomtest, the Beta floor against a direct
simulation of conditional coverage (uniform scores, where the conditional coverage IS q̂), and the alarm's
false-alarm rate at the floor."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from service.calibration.conformal_scores import conformal_quantile
from service.calibration.coverage_bounds import (
    clopper_pearson,
    conditional_coverage_floor,
    coverage_alarm,
    mondrian_coverage_floor,
    normal_interval,
    shortfall_pvalue,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (7, 10), (450, 500), (1, 3)])
def test_clopper_pearson_matches_scipy(k: int, n: int) -> None:
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-10)
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_shortfall_pvalue_matches_scipy_one_sided_test() -> None:
    assert shortfall_pvalue(170, 200, 0.9) == pytest.approx(binomtest(170, 200, 0.9, alternative="less").pvalue)


def test_floor_is_the_delta_quantile_of_conditional_coverage() -> None:
    # With U(0, 1) scores the conditional coverage of q̂ is P(S ≤ q̂) = q̂ itself.
    rng = np.random.default_rng(0)
    n, coverage, delta, runs = 100, 0.9, 0.1, 20000
    q = np.array([conformal_quantile(np.sort(rng.random(n)), coverage) for _ in range(runs)])
    below = float((q < conditional_coverage_floor(n, coverage, delta)).mean())
    assert abs(below - delta) <= 4 * np.sqrt(delta * (1 - delta) / runs)
    assert conditional_coverage_floor(8, 0.9, 0.1) == 1.0  # k = 9 > 8: the set is every class


def test_mondrian_floor_weights_classes() -> None:
    floor = mondrian_coverage_floor([100, 100], 0.9, 0.1)
    assert floor == pytest.approx(conditional_coverage_floor(100, 0.9, 0.05))
    assert mondrian_coverage_floor([], 0.9, 0.1) == 1.0


def test_alarm_false_alarm_rate_at_the_floor_and_power_below_it() -> None:
    rng = np.random.default_rng(1)
    n, ref, level = 1000, 0.88, 0.01
    null = rng.binomial(n, ref, size=20000)
    rate = np.mean([coverage_alarm(int(c), n, ref, false_alarm=level, n_min=100) for c in null])
    assert rate <= level + 4 * np.sqrt(level / 20000)
    shifted = rng.binomial(n, 0.82, size=200)
    assert np.mean([coverage_alarm(int(c), n, ref, false_alarm=level, n_min=100) for c in shifted]) > 0.99
    assert not coverage_alarm(0, 50, ref, false_alarm=level, n_min=100)  # too few labels to judge


def test_normal_interval() -> None:
    x = np.random.default_rng(2).normal(1.0, 2.0, size=400)
    lo, hi = normal_interval(float(x.mean()), float((x**2).mean()), x.size) or (0.0, 0.0)
    half = 1.959963984540054 * x.std(ddof=1) / np.sqrt(x.size)
    assert (lo, hi) == pytest.approx((x.mean() - half, x.mean() + half))
    assert normal_interval(1.0, 1.0, 1) is None
