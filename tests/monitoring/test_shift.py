"""Label-free confidence-shift statistics against scipy and hand-computed PSI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from service.monitoring import shift

FINE = 300


def centred_sample(rng: np.random.Generator, n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Beta(a, b) confidences snapped to fine-bin centres (so binning loses nothing) and their histogram."""
    idx = np.minimum((rng.beta(a, b, size=n) * FINE).astype(int), FINE - 1)
    return (idx + 0.5) / FINE, np.bincount(idx, minlength=FINE).astype(float)


@pytest.mark.parametrize(("n", "m", "b2"), [(500, 700, 2.0), (2000, 300, 1.3), (400, 400, 1.0)])
def test_ks_from_histograms_equals_scipy_ks_2samp_on_equivalent_samples(n: int, m: int, b2: float) -> None:
    rng = np.random.default_rng(n + m)
    x, hx = centred_sample(rng, n, 8.0, 1.0)
    y, hy = centred_sample(rng, m, 8.0, b2)
    d, p = shift.ks_test(hx, hy)
    expected = stats.ks_2samp(x, y, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_ks_p_value_for_large_samples_is_the_kolmogorov_limit() -> None:
    rng = np.random.default_rng(7)
    x, hx = centred_sample(rng, 30_000, 8.0, 1.0)
    y, hy = centred_sample(rng, 20_000, 8.0, 1.02)
    d, p = shift.ks_test(hx, hy)
    expected = stats.ks_2samp(x, y, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=0.05)


def test_ks_from_histograms_never_exceeds_ks_on_raw_samples() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.beta(8, 1, 1000), rng.beta(8, 1.5, 800)
    hx = np.bincount(np.minimum((x * FINE).astype(int), FINE - 1), minlength=FINE)
    hy = np.bincount(np.minimum((y * FINE).astype(int), FINE - 1), minlength=FINE)
    raw = stats.ks_2samp(x, y).statistic
    assert shift.ks_statistic(hx, hy) <= raw + 1e-12
    assert raw - shift.ks_statistic(hx, hy) < 0.02  # the gap inside one bin of width 1/300 is small


def test_psi_by_hand() -> None:
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert shift.psi(np.array([50.0, 50.0]), np.array([80.0, 20.0])) == pytest.approx(expected, abs=1e-12)
    assert shift.psi(np.array([3.0, 7.0]), np.array([30.0, 70.0])) == pytest.approx(0.0, abs=1e-15)


def test_psi_over_reference_deciles_by_hand() -> None:
    ref = np.full(FINE, 10.0)  # uniform: the deciles are exact blocks of 30 fine bins
    assert shift.quantile_groups(ref).tolist() == (np.arange(FINE) // 30).tolist()
    cur = np.zeros(FINE)
    cur[-30:] = 5.0  # everything moved into the top decile
    eps = 1e-4
    expected = 9 * (eps - 0.1) * math.log(eps / 0.1) + (1.0 - 0.1) * math.log(1.0 / 0.1)
    assert shift.psi_quantiles(ref, cur) == pytest.approx(expected, abs=1e-12)
    half = np.zeros(FINE)
    half[:150], half[150:] = 1.0, 3.0  # top five deciles hold 3/4 of the mass
    expected = 5 * (0.25 / 5 - 0.1) * math.log(0.05 / 0.1) + 5 * (0.75 / 5 - 0.1) * math.log(0.15 / 0.1)
    assert shift.psi_quantiles(ref, half) == pytest.approx(expected, abs=1e-12)


def test_psi_keeps_mass_that_lands_where_the_reference_had_none() -> None:
    ref = np.zeros(FINE)
    ref[290:] = 100.0
    cur = np.zeros(FINE)
    cur[10] = 1000.0  # far below anything in the reference
    assert shift.psi_quantiles(ref, cur) > 1.0


def test_confidence_shift_states() -> None:
    rng = np.random.default_rng(1)
    _, ref = centred_sample(rng, 5000, 8.0, 1.0)
    _, same = centred_sample(rng, 2000, 8.0, 1.0)
    _, moved = centred_sample(rng, 2000, 20.0, 1.0)
    assert shift.confidence_shift(None, same)["state"] == "no_reference"
    assert shift.confidence_shift(ref, same[:50] * 0 + 0.1)["state"] == "insufficient_predictions"
    ok = shift.confidence_shift(ref, same)
    assert ok["state"] == "ok" and ok["psi"] < 0.1
    warned = shift.confidence_shift(ref, moved)
    assert warned["state"] == "warning" and warned["psi"] >= 0.25 and warned["ks_pvalue"] < 1e-6
