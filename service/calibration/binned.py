"""Bin-level calibration math shared by row metrics (``metrics``) and streamed sums (``streaming``).

Bins are equal-width on [0, 1] and RIGHT-CLOSED, (m/M, (m+1)/M], as in Mukhoti et al. 2020
(papers.md §1.6): bin = ceil(M·c) − 1 clamped to [0, M − 1], so c = 0 falls in the first bin.
Membership compares c with the float nearest each edge m/M (``np.searchsorted``) rather than rounding
the product M·c: a confidence equal to that float lies ON the edge (bin m − 1), and the fine edge k/300
is the very same float as the coarse edge m/M whenever k/300 = m/M, so coarse bins are exact unions
of fine bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from service.calibration.base import FloatArray, IntArray


def weighted_bincount(index: IntArray, weights: FloatArray | None, size: int) -> FloatArray:
    """Σ of ``weights`` (1 when None) per index value, as a float64 array of length ``size``."""
    return cast(FloatArray, np.bincount(index, weights=weights, minlength=size).astype(np.float64, copy=False))


def bin_edges(n_bins: int) -> FloatArray:
    """Edges m/M for m = 0…M, shape (M + 1,)."""
    return np.arange(n_bins + 1, dtype=np.float64) / n_bins


def bin_index(values: FloatArray, n_bins: int) -> IntArray:
    """Right-closed equal-width bin of each value in [0, 1]: ceil(M·v) − 1 clamped to [0, M − 1]."""
    idx = np.searchsorted(bin_edges(n_bins), values, side="left") - 1
    return np.clip(idx, 0, n_bins - 1).astype(np.int64)


def binned_sums(confidence: FloatArray, correct: FloatArray, n_bins: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-bin (count, Σ confidence, Σ correct), each (M,) float64."""
    idx = bin_index(confidence, n_bins)
    return (
        weighted_bincount(idx, None, n_bins),
        weighted_bincount(idx, confidence, n_bins),
        weighted_bincount(idx, correct, n_bins),
    )


def ece_from_sums(count: FloatArray, conf_sum: FloatArray, correct_sum: FloatArray) -> float:
    """ECE = Σ_m (n_m/N)·|acc_m − conf_m| = (1/N)·Σ_m |A_m − S_m| (papers.md §5.1). NaN when N = 0."""
    total = float(count.sum())
    if total <= 0.0:
        return float("nan")
    return float(np.abs(correct_sum - conf_sum).sum() / total)


def mce_from_sums(count: FloatArray, conf_sum: FloatArray, correct_sum: FloatArray) -> float:
    """MCE = max over non-empty bins of |acc_m − conf_m| (Naeini et al. 2015). NaN when N = 0."""
    full = count > 0
    if not full.any():
        return float("nan")
    return float(np.max(np.abs(correct_sum[full] - conf_sum[full]) / count[full]))


def debiased_ece_from_sums(
    count: FloatArray,
    conf_sum: FloatArray,
    correct_sum: FloatArray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> float:
    """ECE with its finite-sample bias removed by Kumar, Liang & Ma 2019 (Verified Uncertainty
    Calibration, ``normal_debiased_ce`` with power 1).

    ECE_db = 2·ECE − E[ECE*], where ECE* replaces each bin's accuracy by a draw from
    N(acc_m, acc_m(1 − acc_m)/n_m) and keeps its confidence. Clipped at 0: a negative value only says
    the plug-in bias exceeds the measured gap. NaN when N = 0.
    """
    full = count > 0
    if not full.any():
        return float("nan")
    n, s, a = count[full], conf_sum[full], correct_sum[full]
    acc, conf, weight = a / n, s / n, n / n.sum()
    plugin = float(weight @ np.abs(acc - conf))
    rng = np.random.default_rng(seed)
    draws = rng.normal(loc=acc, scale=np.sqrt(acc * (1.0 - acc) / n), size=(n_resamples, acc.size))
    resampled = np.abs(draws - conf) @ weight
    return max(0.0, 2.0 * plugin - float(resampled.mean()))


@dataclass(frozen=True)
class ReliabilityBins:
    """A reliability diagram: per bin m, the count, mean confidence and accuracy (NaN when empty).

    ``edges`` has shape (M + 1,); the other arrays (M,). Bins are right-closed (lo, hi].
    """

    edges: FloatArray
    count: FloatArray
    confidence: FloatArray
    accuracy: FloatArray

    @classmethod
    def from_sums(
        cls, edges: FloatArray, count: FloatArray, conf_sum: FloatArray, correct_sum: FloatArray
    ) -> ReliabilityBins:
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(count > 0, conf_sum / count, np.nan)
            acc = np.where(count > 0, correct_sum / count, np.nan)
        return cls(edges=edges, count=count, confidence=conf, accuracy=acc)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: lists of floats, ``None`` for the mean confidence/accuracy of an empty bin."""

        def clean(values: FloatArray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in values]

        return {
            "edges": [float(e) for e in self.edges],
            "count": [float(c) for c in self.count],
            "confidence": clean(self.confidence),
            "accuracy": clean(self.accuracy),
        }
