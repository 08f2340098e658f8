"""service.calibration.metrics against torchmetrics, netcal, scikit-learn, relplot and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import relplot
import torch
from netcal.metrics import ECE as NetcalECE
from netcal.metrics import MCE as NetcalMCE
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss
from torchmetrics.functional.classification import multiclass_calibration_error
from torchmetrics.functional.classification.calibration_error import _ce_compute

from service.calibration import CalibrationInputError, metrics
from tests.calibration.factories import random_probs, softmax

SIZES = [(2000, 2), (2000, 10), (3000, 100)]


def top_label(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = p.argmax(axis=1)
    return p.max(axis=1), (pred == y).astype(np.float64)


@pytest.mark.parametrize(("n", "k"), SIZES)
@pytest.mark.parametrize("norm", ["l1", "max"])
def test_ece_mce_match_torchmetrics(n: int, k: int, norm: str) -> None:
    # Random continuous confidences never sit on a bin edge, where torchmetrics' bins are left-closed.
    p, y = random_probs(n, k, seed=k)
    ours = metrics.ece(p, y) if norm == "l1" else metrics.mce(p, y)
    # The public API casts to float32, so it agrees to ~1e-6 ...
    public = multiclass_calibration_error(torch.from_numpy(p), torch.from_numpy(y), num_classes=k, n_bins=15, norm=norm)
    assert ours == pytest.approx(public.item(), abs=2e-6)
    # ... and its binning core, fed float64, agrees to rounding.
    conf, correct = top_label(p, y)
    core = _ce_compute(torch.from_numpy(conf), torch.from_numpy(correct), 15, norm=norm)
    assert ours == pytest.approx(core.item(), abs=1e-12)


@pytest.mark.parametrize(("n", "k"), [(2000, 3), (2000, 10), (3000, 100)])
def test_ece_mce_match_netcal(n: int, k: int) -> None:
    # netcal reads a 2-column input as a binary problem (confidence of class 1), so K = 2 is not comparable.
    p, y = random_probs(n, k, seed=10 + k)
    assert metrics.ece(p, y) == pytest.approx(NetcalECE(bins=15).measure(p, y), abs=1e-9)
    assert metrics.mce(p, y) == pytest.approx(NetcalMCE(bins=15).measure(p, y), abs=1e-9)


def test_bins_are_right_closed() -> None:
    # conf 0.6 = 9/15 sits on an edge: (lo, hi] puts it in bin 8, alone; 0.62 is in bin 9.
    p = np.array([[0.6, 0.4], [0.38, 0.62]])
    y = np.array([0, 1 - 1])  # row 0 correct, row 1 wrong
    assert metrics.ece(p, y) == pytest.approx((0.4 + 0.62) / 2, abs=1e-15)
    # A left-closed binning would pool both rows: |0.5 − 0.61| = 0.11.
    bins = metrics.reliability_bins(p, y)
    assert bins.count[8] == 1 and bins.count[9] == 1
    assert metrics.mce(p, y) == pytest.approx(0.62)


def test_edges_and_extremes_by_hand() -> None:
    # Confidence exactly 1 goes to the last bin, 0.5 = 7.5/15 is interior; M = 2 puts 0.5 in bin 0.
    p = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    y = np.array([0, 1, 1])
    b2 = metrics.reliability_bins(p, y, n_bins=2)
    np.testing.assert_array_equal(b2.count, [1, 2])
    assert metrics.ece(p, y, n_bins=2) == pytest.approx(0.5 / 3)  # bin 0: conf 0.5, acc 0


def test_all_correct_one_hot_is_perfectly_calibrated() -> None:
    y = np.arange(50) % 5
    p = np.eye(5)[y]
    assert metrics.ece(p, y) == 0.0
    assert metrics.mce(p, y) == 0.0
    assert metrics.brier(p, y) == 0.0
    assert metrics.nll(p, y) == 0.0
    assert metrics.accuracy(p, y) == 1.0
    assert metrics.classwise_ece(p, y) == 0.0


def test_single_class_present_matches_torchmetrics() -> None:
    p, _ = random_probs(500, 4, seed=3)
    y = np.zeros(500, dtype=np.int64)
    conf, correct = top_label(p, y)
    core = _ce_compute(torch.from_numpy(conf), torch.from_numpy(correct), 15, norm="l1")
    assert metrics.ece(p, y) == pytest.approx(core.item(), abs=1e-12)


@pytest.mark.parametrize(("n", "k"), SIZES)
def test_brier_and_nll_match_sklearn(n: int, k: int) -> None:
    p, y = random_probs(n, k, seed=20 + k)
    labels = list(range(k))
    # sklearn's multiclass Brier is the sum over classes (no /K) when scale_by_half=False.
    assert metrics.brier(p, y) == pytest.approx(brier_score_loss(y, p, labels=labels, scale_by_half=False), abs=1e-12)
    assert metrics.nll(p, y) == pytest.approx(log_loss(y, p, labels=labels), abs=1e-12)


def test_binary_brier_is_twice_sklearn_binary_convention() -> None:
    p, y = random_probs(1000, 2, seed=5)
    # sklearn's binary Brier is mean (p1 − y)²; summing over both classes doubles it.
    assert metrics.brier(p, y) == pytest.approx(2.0 * brier_score_loss(y, p[:, 1]), abs=1e-12)


def test_nll_clips_zero_probabilities() -> None:
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    y = np.array([1, 0])
    assert metrics.nll(p, y) == pytest.approx((-math.log(1e-12) - math.log(0.5)) / 2)


@pytest.mark.parametrize(("n", "k", "seed"), [(2000, 2, 0), (5000, 10, 1), (3000, 100, 2), (300, 10, 3)])
def test_smooth_ece_matches_relplot(n: int, k: int, seed: int) -> None:
    p, y = random_probs(n, k, seed=seed)
    conf, correct = relplot.multiclass_logits_to_confidences(p, y, probs=True)
    assert metrics.smooth_ece(p, y) == pytest.approx(relplot.smECE(conf, correct), abs=1e-9)


def test_smooth_ece_of_perfect_predictions_matches_relplot() -> None:
    y = np.arange(100) % 3
    p = np.eye(3)[y]
    assert metrics.smooth_ece(p, y) == pytest.approx(relplot.smECE(np.ones(100), np.ones(100)), abs=1e-12)


@pytest.mark.parametrize(("n", "k"), SIZES)
def test_reliability_bins_match_sklearn_calibration_curve(n: int, k: int) -> None:
    p, y = random_probs(n, k, seed=30 + k)
    conf, correct = top_label(p, y)
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=15)
    bins = metrics.reliability_bins(p, y)
    full = bins.count > 0
    np.testing.assert_allclose(bins.accuracy[full], prob_true, atol=1e-12)
    np.testing.assert_allclose(bins.confidence[full], prob_pred, atol=1e-12)
    assert bins.count.sum() == n
    np.testing.assert_allclose(bins.edges, np.linspace(0, 1, 16), atol=1e-15)
    as_json = bins.to_dict()
    assert len(as_json["edges"]) == 16 and all(
        v is None for v, c in zip(as_json["accuracy"], bins.count, strict=True) if c == 0
    )


def mukhoti_loop(conf: np.ndarray, correct: np.ndarray, edges: np.ndarray) -> float:
    """The (lo, hi] loop of Mukhoti et al.'s ECELoss/AdaptiveECELoss, written out row by row."""
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += abs(conf[inside].mean() - correct[inside].mean()) * inside.mean()
    return total


@pytest.mark.parametrize(("n", "k"), SIZES)
def test_adaptive_ece_matches_mukhoti_loop(n: int, k: int) -> None:
    p, y = random_probs(n, k, seed=40 + k)
    conf, correct = top_label(p, y)
    edges = np.interp(np.linspace(0, n, 16), np.arange(n), np.sort(conf))
    assert metrics.adaptive_ece(p, y) == pytest.approx(mukhoti_loop(conf, correct, edges), abs=1e-12)


def test_adaptive_ece_mukhoti_drops_the_minimum_confidence_sample() -> None:
    # Two rows, M = 1: edges = [min, max]; the min row is in no bin, N stays 2.
    p = np.array([[0.6, 0.4], [0.9, 0.1]])
    y = np.array([1, 0])
    assert metrics.adaptive_ece(p, y, n_bins=1) == pytest.approx(abs(1 - 0.9) / 2)
    assert metrics.adaptive_ece(p, y, n_bins=1, variant="equal_mass") == pytest.approx(abs(1 - 1.5) / 2)


def test_adaptive_ece_equal_mass_by_hand() -> None:
    p = np.array([[0.55, 0.45], [0.65, 0.35], [0.75, 0.25], [0.95, 0.05]])
    y = np.array([0, 1, 0, 0])
    # groups {0.55, 0.65}: |1 − 1.2| ; {0.75, 0.95}: |2 − 1.7|
    assert metrics.adaptive_ece(p, y, n_bins=2, variant="equal_mass") == pytest.approx((0.2 + 0.3) / 4)


@pytest.mark.parametrize(("n", "k"), SIZES)
def test_classwise_ece_matches_per_class_loop(n: int, k: int) -> None:
    p, y = random_probs(n, k, seed=50 + k)
    edges = np.linspace(0, 1, 16)
    expected = np.mean([mukhoti_loop(p[:, c], (y == c).astype(float), edges) for c in range(k)])
    assert metrics.classwise_ece(p, y) == pytest.approx(expected, abs=1e-12)


def test_debiased_ece_removes_finite_sample_bias() -> None:
    # Labels drawn from the predicted probabilities: true ECE is 0, the plug-in estimate is not.
    rng = np.random.default_rng(0)
    plugin, debiased = [], []
    for seed in range(5):
        z = rng.normal(size=(400, 4)) * 2
        p = softmax(z)
        y = (p.cumsum(axis=1) < rng.random(400)[:, None]).sum(axis=1)
        plugin.append(metrics.ece(p, y))
        debiased.append(metrics.debiased_ece(p, y, seed=seed))
    assert np.mean(debiased) < 0.6 * np.mean(plugin)
    # With a large, clearly miscalibrated sample the correction is small.
    p, y = random_probs(20000, 10, seed=1)
    assert metrics.debiased_ece(p, y) == pytest.approx(metrics.ece(p, y), rel=0.05)


def test_ece_ci_against_a_plain_bootstrap() -> None:
    p, y = random_probs(3000, 10, seed=2)
    point, lo, hi = metrics.ece_ci(p, y, n_boot=1000, seed=1)
    assert point == metrics.ece(p, y)
    assert lo < hi
    rng = np.random.default_rng(123)
    reps = [metrics.ece(p[i], y[i]) for i in (rng.integers(0, 3000, 3000) for _ in range(1000))]
    ref_lo, ref_hi = np.quantile(reps, [0.025, 0.975])
    assert lo == pytest.approx(ref_lo, abs=0.003)
    assert hi == pytest.approx(ref_hi, abs=0.003)
    assert metrics.ece_ci(p, y, n_boot=1000, seed=1) == (point, lo, hi)


def test_mean_confidence_and_accuracy() -> None:
    p = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    y = np.array([0, 0, 1])
    assert metrics.accuracy(p, y) == pytest.approx(1 / 3)  # tie at row 2 predicts class 0
    assert metrics.mean_confidence(p, y) == pytest.approx((0.7 + 0.8 + 0.5) / 3)


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (np.array([[0.5, np.nan]]), np.array([0]), "NaN or infinite"),
        (np.array([0.5, 0.5]), np.array([0]), "2-D array"),
        (np.array([[0.5, 0.5]]), np.array([2]), r"labels must lie in \[0, 1\]"),
        (np.array([[0.5, 0.5]]), np.array([0, 1]), "length 1"),
        (np.array([[1.5, -0.5]]), np.array([0]), r"in \[0, 1\]"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "empty"),
        (np.array([[0.5, 0.5]]), np.array([0.5]), "integers"),
        (np.array([[1.0]]), np.array([0]), "at least 2 classes"),
    ],
)
def test_bad_input_raises_calibration_input_error(probs: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(CalibrationInputError, match=message):
        metrics.ece(probs, labels)


def test_bad_n_bins_and_variant() -> None:
    p, y = random_probs(10, 3)
    with pytest.raises(CalibrationInputError, match="n_bins"):
        metrics.ece(p, y, n_bins=0)
    with pytest.raises(CalibrationInputError, match="variant"):
        metrics.adaptive_ece(p, y, variant="quantile")  # type: ignore[arg-type]
