"""Shadow comparison math: one batch's paired sums against scikit-learn, the empirical-Bernstein bound against
confseq's stitching and its anytime validity under a null, the ECE difference against a direct
computation on the rows, and the bootstrap over buckets (covers the true difference in a simulation; no
interval below the bucket minimum)."""

from __future__ import annotations

import numpy as np
import pytest
from confseq import boundaries
from sklearn.metrics import log_loss

from service.calibration.paired import PairedSums
from service.calibration.shadow_compare import (
    Evidence,
    bernstein_lower_bound,
    ece_difference,
    promotion_bound,
    score_pair,
    should_promote,
)
from service.calibration.streaming import BinStats
from tests.factories import hand_ece, softmax


def _world(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    z = rng.normal(size=(n, 4)) * 3
    p = softmax(z / 2)
    return z, np.minimum((p.cumsum(1) < rng.random((n, 1))).sum(1), 3)


def test_score_pair_against_sklearn() -> None:
    z, y = _world(np.random.default_rng(0), 500)
    pa, ps = softmax(z), softmax(z / 2)
    s = score_pair(pa, ps, y, clip=2.0)
    assert s.nll.n == 500
    assert s.nll.total == pytest.approx(log_loss(y, pa, normalize=False) - log_loss(y, ps, normalize=False), rel=1e-9)
    assert s.nll_active == pytest.approx(log_loss(y, pa, normalize=False), rel=1e-9)
    assert s.active_bins.ece() == pytest.approx(hand_ece(pa, y), abs=1e-12)
    assert s.shadow_bins.ece() == pytest.approx(hand_ece(ps, y), abs=1e-12)
    d = np.log(ps[np.arange(500), y]) - np.log(pa[np.arange(500), y])
    assert s.nll_clipped_squares == pytest.approx((np.clip(d, -2, 2) ** 2).sum(), rel=1e-12)
    assert not should_promote(s.evidence, clip=2.0, alpha=0.05, margin=0.0, bound="hoeffding")  # not yet
    z, y = _world(np.random.default_rng(2), 6000)  # test_paired.py: T = 1 vs the true T = 2 wins by ~3,000
    big = score_pair(softmax(z), softmax(z / 2), y, clip=2.0).evidence
    assert should_promote(big, clip=2.0, alpha=0.05, margin=0.0, bound="hoeffding")
    assert promotion_bound(big, clip=2.0, alpha=0.05) > promotion_bound(big, clip=2.0, alpha=0.05, bound="hoeffding")
    zero = Evidence(PairedSums.of(np.zeros(10_000), 2.0), 0.0)
    assert not should_promote(zero, clip=2.0, alpha=0.05, margin=0.0)


def test_bernstein_bound_is_confseqs_stitching_at_the_squared_sum() -> None:
    rng = np.random.default_rng(3)
    x = np.clip(rng.normal(0.05, 0.4, 5000), -2, 2)
    e = Evidence(PairedSums.of(x, 2.0), float((x * x).sum()))
    u = float(boundaries.poly_stitching_bound(float((x * x).sum()), 0.05, 4.0, 4.0, 1.4, 2.0))  # v_min B², c 2B
    assert bernstein_lower_bound(e, clip=2.0, alpha=0.05) == pytest.approx((x.sum() - u) / 5000, rel=1e-12)


def test_bernstein_bound_almost_never_promotes_under_the_null() -> None:
    """Mean-zero paired differences, skewed (d = Exp(mean 0.5) − 0.5, the upper tail clipped at B = 2), the bound
    checked every 20 labels: the share of runs that EVER promote must stay below α = 0.05 (anytime validity:
    per run, not per check). A fixed-n test checked this often would promote in most runs."""
    rng = np.random.default_rng(4)
    runs, horizon, step, ever = 300, 4000, 20, 0
    for _ in range(runs):
        d = np.clip(rng.exponential(0.5, horizon) - 0.5, -2.0, 2.0)
        sums, squares, clipped = np.cumsum(d), np.cumsum(d * d), np.cumsum(np.clip(d, -2, 2))
        for t in range(step, horizon + 1, step):
            e = Evidence(PairedSums(float(t), float(sums[t - 1]), float(squares[t - 1]), float(clipped[t - 1])),
                         float(squares[t - 1]))
            if bernstein_lower_bound(e, clip=2.0, alpha=0.05) > 0:
                ever += 1
                break
    assert ever / runs <= 0.05


def _bucket_bins(p: np.ndarray, y: np.ndarray, n_buckets: int) -> np.ndarray:
    out = []
    for part in np.array_split(np.arange(len(y)), n_buckets):
        out.append(np.stack(BinStats.from_predictions(p[part], y[part]).coarse(15)))
    return np.stack(out)


def test_ece_difference_point_and_bootstrap() -> None:
    rng = np.random.default_rng(1)
    z, y = _world(rng, 3000)
    pa, ps = softmax(z), softmax(z / 2)
    a, s = _bucket_bins(pa, y, 60), _bucket_bins(ps, y, 60)
    ece_a, ece_s, diff, lo, hi = ece_difference(a, s, n_boot=300)
    assert ece_a == pytest.approx(hand_ece(pa, y), abs=1e-12) and ece_s == pytest.approx(hand_ece(ps, y), abs=1e-12)
    assert diff == pytest.approx(ece_a - ece_s, abs=1e-15)
    assert lo is not None and hi is not None and lo < diff < hi and lo > 0  # T = 1 is far worse calibrated
    assert ece_difference(a[:9], s[:9])[3:] == (None, None)  # too few buckets for a bootstrap

    # coverage of the true ECE difference (computed on a huge sample) over repeated small samples
    zb, yb = _world(rng, 400_000)
    truth = hand_ece(softmax(zb), yb) - hand_ece(softmax(zb / 2), yb)
    hits = 0
    for _ in range(60):
        z, y = _world(rng, 1500)
        _, _, _, lo, hi = ece_difference(_bucket_bins(softmax(z), y, 30), _bucket_bins(softmax(z / 2), y, 30),
                                         n_boot=200, seed=int(rng.integers(1 << 30)))
        assert lo is not None and hi is not None
        hits += lo <= truth <= hi
    assert hits >= 45  # nominal 95%, measured ~85%: binned ECE's small-sample bias is only corrected to first order
