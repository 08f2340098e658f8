"""service.calibration.streaming: merged shards equal the whole; bin statistics reproduce row metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.calibration import CalibrationInputError, metrics, streaming
from service.calibration.streaming import FINE_BINS, BinStats
from tests.calibration.factories import random_probs

DIVISORS = [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 25, 30, 50, 60, 75, 100, 150, 300]


def edge_heavy_probs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary rows whose confidence sits exactly on fine/coarse edges k/300 (the adversarial case)."""
    rng = np.random.default_rng(seed)
    conf = rng.integers(150, 301, n) / 300.0
    p = np.stack([conf, 1.0 - conf], axis=1)
    return p, rng.integers(0, 2, n)


def test_fine_bin_index_is_right_closed() -> None:
    c = np.array([0.0, 1e-9, 1 / 300, 1 / 300 + 1e-12, 0.5, 0.6, 1.0])
    np.testing.assert_array_equal(streaming.fine_bin_index(c), [0, 0, 0, 1, 149, 179, 299])


def test_fine_bin_index_matches_ceil_formula_off_edges() -> None:
    c = np.random.default_rng(0).random(100_000)
    expected = np.clip(np.ceil(FINE_BINS * c) - 1, 0, FINE_BINS - 1)
    np.testing.assert_array_equal(streaming.fine_bin_index(c), expected)


@pytest.mark.parametrize("data", ["random", "edges"])
def test_merged_chunks_equal_the_whole(data: str) -> None:
    p, y = random_probs(3000, 10, seed=1) if data == "random" else edge_heavy_probs(3000)
    whole = BinStats.from_predictions(p, y)
    parts = [BinStats.from_predictions(p[i : i + 700], y[i : i + 700]) for i in range(0, 3000, 700)]
    merged = parts[0]
    for part in parts[1:]:
        merged = streaming.merge(merged, part)
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.confidence_sum, whole.confidence_sum, rtol=1e-12)
    np.testing.assert_allclose(merged.correct_sum, whole.correct_sum, rtol=1e-12)
    assert merged.nll_sum == pytest.approx(whole.nll_sum, rel=1e-12)
    assert sum(parts, BinStats()).brier == pytest.approx(whole.brier, rel=1e-12)


@pytest.mark.parametrize("data", ["random", "edges", "k100"])
@pytest.mark.parametrize("n_bins", DIVISORS)
def test_bin_stats_reproduce_row_metrics_exactly(data: str, n_bins: int) -> None:
    p, y = {
        "random": lambda: random_probs(2000, 10, seed=2),
        "edges": lambda: edge_heavy_probs(2000),
        "k100": lambda: random_probs(2000, 100, seed=3),
    }[data]()
    stats = BinStats.from_predictions(p, y)
    assert stats.ece(n_bins) == pytest.approx(metrics.ece(p, y, n_bins), abs=1e-12)
    assert stats.mce(n_bins) == pytest.approx(metrics.mce(p, y, n_bins), abs=1e-12)
    ours, rows = stats.reliability_bins(n_bins), metrics.reliability_bins(p, y, n_bins)
    np.testing.assert_array_equal(ours.count, rows.count)
    np.testing.assert_allclose(ours.accuracy, rows.accuracy, atol=1e-12)


def test_edge_heavy_ece_is_exact_against_a_hand_loop() -> None:
    # Independent of ``binned``: a value equal to the float m/M lies ON that edge, so in bin m − 1.
    p, y = edge_heavy_probs(500, seed=4)
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y)
    for n_bins in (15, 20, 60):
        gaps = [0.0] * n_bins
        for c, ok in zip(conf, correct, strict=True):
            b = next(m for m in range(n_bins) if c <= (m + 1) / n_bins)
            gaps[b] += float(ok) - c
        assert BinStats.from_predictions(p, y).ece(n_bins) == pytest.approx(sum(map(abs, gaps)) / 500, abs=1e-12)
        assert metrics.ece(p, y, n_bins) == pytest.approx(sum(map(abs, gaps)) / 500, abs=1e-12)


def test_scalar_summaries_match_metrics() -> None:
    p, y = random_probs(1500, 7, seed=5)
    stats = BinStats.from_predictions(p, y)
    assert stats.n == 1500
    assert stats.accuracy == pytest.approx(metrics.accuracy(p, y), abs=1e-12)
    assert stats.mean_confidence == pytest.approx(metrics.mean_confidence(p, y), abs=1e-12)
    assert stats.nll == pytest.approx(metrics.nll(p, y), abs=1e-12)
    assert stats.brier == pytest.approx(metrics.brier(p, y), abs=1e-12)
    assert stats.debiased_ece(15) == pytest.approx(metrics.debiased_ece(p, y, 15), abs=1e-12)


def test_adaptive_ece_approx_is_close_to_equal_mass() -> None:
    p, y = random_probs(20000, 10, seed=6)
    exact = metrics.adaptive_ece(p, y, variant="equal_mass")
    assert BinStats.from_predictions(p, y).adaptive_ece_approx(15) == pytest.approx(exact, abs=2e-3)


def test_adaptive_ece_approx_is_exact_when_groups_fall_on_micro_bins() -> None:
    # 4 rows per distinct confidence, 2 groups of 8 rows each on whole micro-bins.
    conf = np.repeat([0.55, 0.65, 0.75, 0.95], 4)
    p = np.stack([conf, 1 - conf], axis=1)
    y = np.tile([0, 0, 0, 1], 4)
    stats = BinStats.from_predictions(p, y)
    expected = metrics.adaptive_ece(p, y, n_bins=2, variant="equal_mass")
    assert stats.adaptive_ece_approx(2) == pytest.approx(expected, abs=1e-12)


def test_empty_stats_give_nan() -> None:
    stats = BinStats()
    assert stats.n == 0 and math.isnan(stats.ece()) and math.isnan(stats.accuracy)
    assert math.isnan(streaming.ece_ci_from_bins(stats)[0])


def test_ece_ci_from_bins_is_close_to_the_row_bootstrap() -> None:
    p, y = random_probs(5000, 10, seed=7)
    point, lo, hi = streaming.ece_ci_from_bins(BinStats.from_predictions(p, y), 15, n_boot=1000, seed=0)
    row_point, row_lo, row_hi = metrics.ece_ci(p, y, 15, n_boot=1000, seed=0)
    assert point == pytest.approx(row_point, abs=1e-12)
    assert lo == pytest.approx(row_lo, abs=2e-3) and hi == pytest.approx(row_hi, abs=2e-3)
    assert lo < hi


def test_scaled_keeps_the_ratios() -> None:
    p, y = random_probs(1000, 5, seed=8)
    stats = BinStats.from_predictions(p, y)
    decayed = stats.scaled(0.5)
    assert decayed.n == 500 and decayed.ece() == pytest.approx(stats.ece(), abs=1e-12)


def test_json_round_trip() -> None:
    p, y = random_probs(500, 5, seed=9)
    stats = BinStats.from_predictions(p, y)
    again = BinStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again.ece() == stats.ece() and again.nll == stats.nll


def test_bad_shapes_and_bin_counts() -> None:
    with pytest.raises(CalibrationInputError, match="shape"):
        BinStats(count=np.zeros(15))
    with pytest.raises(CalibrationInputError, match="divide 300"):
        BinStats().ece(7)
