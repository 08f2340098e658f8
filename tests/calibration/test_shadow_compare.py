"""Shadow comparison math: one batch's paired sums against scikit-learn, the ECE difference against a direct
computation on the rows, and the bootstrap over buckets (covers the true difference in a simulation; no
interval below the bucket minimum)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss

from service.calibration.paired import PairedSums
from service.calibration.shadow_compare import ece_difference, score_pair, should_promote
from service.calibration.streaming import BinStats


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    out: np.ndarray = e / e.sum(1, keepdims=True)
    return out


def _ece(p: np.ndarray, y: np.ndarray, m: int = 15) -> float:
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for k in range(m):
        inside = (conf > k / m) & (conf <= (k + 1) / m)
        if inside.any():
            total += inside.sum() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return total / len(y)


def _world(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    z = rng.normal(size=(n, 4)) * 3
    p = _softmax(z / 2)
    return z, np.minimum((p.cumsum(1) < rng.random((n, 1))).sum(1), 3)


def test_score_pair_against_sklearn() -> None:
    z, y = _world(np.random.default_rng(0), 500)
    pa, ps = _softmax(z), _softmax(z / 2)
    s = score_pair(pa, ps, y, clip=2.0)
    assert s.nll.n == 500
    assert s.nll.total == pytest.approx(log_loss(y, pa, normalize=False) - log_loss(y, ps, normalize=False), rel=1e-9)
    assert s.nll_active == pytest.approx(log_loss(y, pa, normalize=False), rel=1e-9)
    assert s.active_bins.ece() == pytest.approx(_ece(pa, y), abs=1e-12)
    assert s.shadow_bins.ece() == pytest.approx(_ece(ps, y), abs=1e-12)
    assert not should_promote(s.nll, clip=2.0, alpha=0.05, margin=0.0)  # 500 labels: not yet enough evidence
    z, y = _world(np.random.default_rng(2), 6000)  # test_paired.py: T = 1 vs the true T = 2 wins by ~3,000
    assert should_promote(score_pair(_softmax(z), _softmax(z / 2), y, clip=2.0).nll, clip=2.0, alpha=0.05, margin=0.0)
    assert not should_promote(PairedSums.of(np.zeros(10_000), 2.0), clip=2.0, alpha=0.05, margin=0.0)


def _bucket_bins(p: np.ndarray, y: np.ndarray, n_buckets: int) -> np.ndarray:
    out = []
    for part in np.array_split(np.arange(len(y)), n_buckets):
        out.append(np.stack(BinStats.from_predictions(p[part], y[part]).coarse(15)))
    return np.stack(out)


def test_ece_difference_point_and_bootstrap() -> None:
    rng = np.random.default_rng(1)
    z, y = _world(rng, 3000)
    pa, ps = _softmax(z), _softmax(z / 2)
    a, s = _bucket_bins(pa, y, 60), _bucket_bins(ps, y, 60)
    ece_a, ece_s, diff, lo, hi = ece_difference(a, s, n_boot=300)
    assert ece_a == pytest.approx(_ece(pa, y), abs=1e-12) and ece_s == pytest.approx(_ece(ps, y), abs=1e-12)
    assert diff == pytest.approx(ece_a - ece_s, abs=1e-15)
    assert lo is not None and hi is not None and lo < diff < hi and lo > 0  # T = 1 is far worse calibrated
    assert ece_difference(a[:9], s[:9])[3:] == (None, None)  # too few buckets for a bootstrap

    # coverage of the true ECE difference (computed on a huge sample) over repeated small samples
    zb, yb = _world(rng, 400_000)
    truth = _ece(_softmax(zb), yb) - _ece(_softmax(zb / 2), yb)
    hits = 0
    for _ in range(60):
        z, y = _world(rng, 1500)
        _, _, _, lo, hi = ece_difference(_bucket_bins(_softmax(z), y, 30), _bucket_bins(_softmax(z / 2), y, 30),
                                         n_boot=200, seed=int(rng.integers(1 << 30)))
        assert lo is not None and hi is not None
        hits += lo <= truth <= hi
    assert hits >= 45  # nominal 95%, measured ~85%: binned ECE's small-sample bias is only corrected to first order
