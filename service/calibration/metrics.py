"""Calibration metrics on rows: probs (n, K) float arrays (rows sum to 1) and labels (n,) ints.

Top-label metrics use the confidence c = max_k q_k and correctness 1[argmax q = y]. Equal-width bins
are right-closed, (lo, hi], as in Mukhoti et al. 2020 (papers.md §1.6); see ``binned``. All metrics
default to M = 15 bins.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import PROB_FLOOR, CalibrationInputError, FloatArray, check_probabilities
from service.calibration.binned import (
    ReliabilityBins,
    bin_edges,
    bin_index,
    binned_sums,
    debiased_ece_from_sums,
    ece_from_sums,
    mce_from_sums,
)
from service.calibration.smooth import smooth_ece_binary

__all__ = [
    "ReliabilityBins",
    "accuracy",
    "adaptive_ece",
    "brier",
    "classwise_ece",
    "debiased_ece",
    "ece",
    "ece_ci",
    "mce",
    "mean_confidence",
    "nll",
    "reliability_bins",
    "smooth_ece",
    "top_label",
]


def top_label(probs: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(confidence c_i = max_k q_ik, correct_i = 1[argmax_k q_ik = y_i]), each (n,) float64."""
    p, y = check_probabilities(probs, labels)
    pred = p.argmax(axis=1)
    return p[np.arange(p.shape[0]), pred], (pred == y).astype(np.float64)


def _check_bins(n_bins: int) -> None:
    if n_bins < 1:
        raise CalibrationInputError(f"n_bins must be at least 1; got {n_bins}")


def ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error, ECE = Σ_m (|B_m|/N)·|acc(B_m) − conf(B_m)|, equal-width (lo, hi] bins."""
    _check_bins(n_bins)
    return ece_from_sums(*binned_sums(*top_label(probs, labels), n_bins))


def mce(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Maximum calibration error: max over non-empty equal-width bins of |acc − conf| (Naeini et al. 2015)."""
    _check_bins(n_bins)
    return mce_from_sums(*binned_sums(*top_label(probs, labels), n_bins))


def reliability_bins(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> ReliabilityBins:
    """Per equal-width (lo, hi] bin: count, mean confidence, accuracy (NaN when empty), plus the edges."""
    _check_bins(n_bins)
    return ReliabilityBins.from_sums(bin_edges(n_bins), *binned_sums(*top_label(probs, labels), n_bins))


def adaptive_ece(
    probs: ArrayLike,
    labels: ArrayLike,
    n_bins: int = 15,
    *,
    variant: Literal["mukhoti", "equal_mass"] = "mukhoti",
) -> float:
    """Adaptive ECE (AdaECE): the ECE formula over equal-mass bins of the top-label confidence.

    ``variant="mukhoti"`` (default) reproduces ``AdaptiveECELoss`` of Mukhoti et al. 2020 exactly, as
    papers.md §1.6 and the FTS code use it: edges = interp(linspace(0, N, M+1), arange(N), sort(c)),
    (lo, hi] membership, weights |B_m|/N with the full N. Quirk kept on purpose: the sample(s) with the
    minimum confidence fall in no bin. ``variant="equal_mass"`` instead splits the sorted confidences
    into M groups of ⌊N/M⌋ or ⌈N/M⌉ samples (every sample counted); ``streaming`` approximates this one.
    """
    _check_bins(n_bins)
    conf, correct = top_label(probs, labels)
    n = conf.size
    if variant == "equal_mass":
        order = np.argsort(conf, kind="stable")
        bounds = np.round(np.linspace(0, n, n_bins + 1)).astype(np.int64)
        group = np.repeat(np.arange(n_bins), bounds[1:] - bounds[:-1])
        diff = np.bincount(group, weights=correct[order] - conf[order], minlength=n_bins)
        return float(np.abs(diff).sum() / n)
    if variant != "mukhoti":
        raise CalibrationInputError(f"unknown adaptive_ece variant {variant!r}; use 'mukhoti' or 'equal_mass'")
    edges = np.interp(np.linspace(0, n, n_bins + 1), np.arange(n), np.sort(conf))
    idx = np.searchsorted(edges, conf, side="left") - 1  # edges[idx] < c <= edges[idx + 1]
    inside = idx >= 0
    diff = np.bincount(idx[inside], weights=(correct - conf)[inside], minlength=n_bins)
    return float(np.abs(diff).sum() / n)


def classwise_ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Classwise ECE = (1/K) Σ_k Σ_m (|B_mk|/N)·|mean 1[y = k] − mean q_k| over all N rows per class k.

    Mukhoti et al. 2020 (papers.md §1.6) with two documented differences: K is the number of columns
    (theirs: max(label) + 1), and q_k = 0 exactly falls in the first bin (theirs: in no bin).
    """
    _check_bins(n_bins)
    p, y = check_probabilities(probs, labels)
    n, k = p.shape
    cell = bin_index(p, n_bins) + np.arange(k)[None, :] * n_bins  # (n, K) flat (class, bin) index
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    diff = np.bincount(cell.ravel(), weights=(onehot - p).ravel(), minlength=k * n_bins)
    return float(np.abs(diff).sum() / (n * k))


def brier(probs: ArrayLike, labels: ArrayLike) -> float:
    """Multiclass Brier score (1/N) Σ_i Σ_k (q_ik − 1[y_i = k])², in [0, 2]. Never divided by K."""
    p, y = check_probabilities(probs, labels)
    sq = np.square(p)
    rows = np.arange(p.shape[0])
    return float((sq.sum(axis=1) - 2.0 * p[rows, y] + 1.0).mean())


def nll(probs: ArrayLike, labels: ArrayLike) -> float:
    """Negative log-likelihood −(1/N) Σ_i log q_{i,y_i}, probabilities clipped at 1e-12."""
    p, y = check_probabilities(probs, labels)
    return float(-np.log(np.clip(p[np.arange(p.shape[0]), y], PROB_FLOOR, 1.0)).mean())


def accuracy(probs: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of rows whose argmax equals the label."""
    return float(top_label(probs, labels)[1].mean())


def mean_confidence(probs: ArrayLike, labels: ArrayLike) -> float:
    """Mean top-label confidence: the accuracy a calibrated model expects of itself."""
    return float(top_label(probs, labels)[0].mean())


def smooth_ece(probs: ArrayLike, labels: ArrayLike) -> float:
    """Smooth ECE of (confidence, correct) with the automatic bandwidth; matches ``relplot.smECE``."""
    return smooth_ece_binary(*top_label(probs, labels))


def debiased_ece(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, *, n_resamples: int = 1000, seed: int = 0
) -> float:
    """Bias-corrected ECE over equal-width bins (Kumar et al. 2019; see ``binned.debiased_ece_from_sums``)."""
    _check_bins(n_bins)
    sums = binned_sums(*top_label(probs, labels), n_bins)
    return debiased_ece_from_sums(*sums, n_resamples=n_resamples, seed=seed)


def ece_ci(
    probs: ArrayLike,
    labels: ArrayLike,
    n_bins: int = 15,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(ECE, lo, hi): the ECE and a percentile bootstrap (1 − α) interval from resampling rows.

    Bins are fixed, so a replicate only needs its rows' bin, confidence and correctness: replicates are
    computed in chunks with one ``bincount`` over (replicate, bin) keys.
    """
    _check_bins(n_bins)
    if not 0.0 < alpha < 1.0:
        raise CalibrationInputError(f"alpha must lie in (0, 1); got {alpha}")
    conf, correct = top_label(probs, labels)
    point = ece_from_sums(*binned_sums(conf, correct, n_bins))
    if n_boot < 1:
        return point, point, point
    n = conf.size
    idx_bin = bin_index(conf, n_bins)
    gap = correct - conf
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)
    replicates = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        reps = min(chunk, n_boot - start)
        rows = rng.integers(0, n, size=(reps, n))
        keys = (np.arange(reps)[:, None] * n_bins + idx_bin[rows]).ravel()
        diff = np.bincount(keys, weights=gap[rows].ravel(), minlength=reps * n_bins).reshape(reps, n_bins)
        replicates[start : start + reps] = np.abs(diff).sum(axis=1) / n
    lo, hi = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(lo), float(hi)
