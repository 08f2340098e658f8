"""O(bins) sufficient statistics for calibration monitoring: merge shards by adding, query any window.

``BinStats`` keeps, per micro-bin of the top-label confidence (FINE_BINS = 300 right-closed bins on
[0, 1]), the count n_m, Σ confidence S_m and Σ correct A_m, plus running sums of NLL and Brier. Then
    ECE = (1/N) Σ_m |A_m − S_m|      (papers.md §5.1)
and equal-width ECE/MCE/reliability bins with any M dividing 300 (5, 10, 15, 20, 25, 30, 50, 60, 75,
100, 150, 300) are EXACT: coarse bin = fine bin // (300 // M), because the fine edges k/300 include every
coarse edge m/M as the very same float (see ``binned``). Results equal ``metrics.ece`` on the raw rows.

AdaECE is not exactly streamable (its edges are data quantiles). ``adaptive_ece_approx`` uses option
(b) of papers.md §5.1: consecutive micro-bins are merged into ~equal-mass groups; a micro-bin is never
split, so the error comes only from micro-bins straddling a group boundary (width 1/300), and mass
piled in one micro-bin (e.g. c ∈ (299/300, 1]) makes fewer, larger groups.

The classwise table is ``classwise_stats.ClasswiseStats``. Exponential decay for drift: multiply every
array and sum by the same factor (``scaled``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import PROB_FLOOR, CalibrationInputError, FloatArray, check_probabilities
from service.calibration.binned import (
    ReliabilityBins,
    bin_edges,
    bin_index,
    debiased_ece_from_sums,
    ece_from_sums,
    mce_from_sums,
    weighted_bincount,
)
from service.calibration.metrics import top_label

FINE_BINS = 300


def fine_bin_index(confidence: ArrayLike) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Micro-bin of each confidence: ceil(300·c) − 1 clamped to [0, 299] (right-closed bins)."""
    return bin_index(np.asarray(confidence, dtype=np.float64), FINE_BINS)


def confidence_histogram(confidence: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(count, Σ confidence) per micro-bin, each (300,): the label-free confidence state of served rows."""
    conf = np.asarray(confidence, dtype=np.float64)
    idx = fine_bin_index(conf)
    return weighted_bincount(idx, None, FINE_BINS), weighted_bincount(idx, conf, FINE_BINS)


def _coarsen_factor(n_bins: int) -> int:
    if n_bins < 1 or FINE_BINS % n_bins:
        raise CalibrationInputError(f"n_bins must divide {FINE_BINS} (e.g. 10, 15, 20, 25); got {n_bins}")
    return FINE_BINS // n_bins


def _zeros() -> FloatArray:
    return np.zeros(FINE_BINS)


@dataclass
class BinStats:
    """Per micro-bin count, Σ confidence, Σ correct (each (300,) float64) plus Σ NLL and Σ Brier."""

    count: FloatArray = field(default_factory=_zeros)
    confidence_sum: FloatArray = field(default_factory=_zeros)
    correct_sum: FloatArray = field(default_factory=_zeros)
    nll_sum: float = 0.0
    brier_sum: float = 0.0

    def __post_init__(self) -> None:
        for name in ("count", "confidence_sum", "correct_sum"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (FINE_BINS,):
                raise CalibrationInputError(f"BinStats.{name} must have shape ({FINE_BINS},); got {arr.shape}")
            setattr(self, name, arr)
        self.nll_sum, self.brier_sum = float(self.nll_sum), float(self.brier_sum)

    @classmethod
    def from_predictions(cls, probs: ArrayLike, labels: ArrayLike) -> BinStats:
        """Statistics of probs (n, K) against labels (n,)."""
        p, y = check_probabilities(probs, labels)
        conf, correct = top_label(p, y)
        idx = fine_bin_index(conf)
        rows = np.arange(p.shape[0])
        p_y = p[rows, y]
        return cls(
            count=weighted_bincount(idx, None, FINE_BINS),
            confidence_sum=weighted_bincount(idx, conf, FINE_BINS),
            correct_sum=weighted_bincount(idx, correct, FINE_BINS),
            nll_sum=float(-np.log(np.clip(p_y, PROB_FLOOR, 1.0)).sum()),
            brier_sum=float((np.square(p).sum(axis=1) - 2.0 * p_y + 1.0).sum()),
        )

    def __add__(self, other: BinStats) -> BinStats:
        return BinStats(
            count=self.count + other.count,
            confidence_sum=self.confidence_sum + other.confidence_sum,
            correct_sum=self.correct_sum + other.correct_sum,
            nll_sum=self.nll_sum + other.nll_sum,
            brier_sum=self.brier_sum + other.brier_sum,
        )

    def scaled(self, factor: float) -> BinStats:
        """Every statistic times ``factor`` (exponential decay keeps all ratios)."""
        return BinStats(
            self.count * factor,
            self.confidence_sum * factor,
            self.correct_sum * factor,
            self.nll_sum * factor,
            self.brier_sum * factor,
        )

    @property
    def n(self) -> float:
        return float(self.count.sum())

    def _mean(self, total: float) -> float:
        n = self.n
        return total / n if n > 0 else float("nan")

    @property
    def accuracy(self) -> float:
        return self._mean(float(self.correct_sum.sum()))

    @property
    def mean_confidence(self) -> float:
        return self._mean(float(self.confidence_sum.sum()))

    @property
    def nll(self) -> float:
        return self._mean(self.nll_sum)

    @property
    def brier(self) -> float:
        return self._mean(self.brier_sum)

    def coarse(self, n_bins: int = 15) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(count, Σ confidence, Σ correct) over M equal-width bins; M must divide 300."""
        shape = (n_bins, _coarsen_factor(n_bins))
        return (
            self.count.reshape(shape).sum(axis=1),
            self.confidence_sum.reshape(shape).sum(axis=1),
            self.correct_sum.reshape(shape).sum(axis=1),
        )

    def ece(self, n_bins: int = 15) -> float:
        """Equal-width ECE; equals ``metrics.ece`` on the raw rows. NaN when empty."""
        return ece_from_sums(*self.coarse(n_bins))

    def mce(self, n_bins: int = 15) -> float:
        return mce_from_sums(*self.coarse(n_bins))

    def debiased_ece(self, n_bins: int = 15, *, n_resamples: int = 1000, seed: int = 0) -> float:
        return debiased_ece_from_sums(*self.coarse(n_bins), n_resamples=n_resamples, seed=seed)

    def reliability_bins(self, n_bins: int = 15) -> ReliabilityBins:
        return ReliabilityBins.from_sums(bin_edges(n_bins), *self.coarse(n_bins))

    def adaptive_ece_approx(self, n_bins: int = 15) -> float:
        """AdaECE from ~equal-mass groups of whole micro-bins (approximates ``adaptive_ece(variant=
        "equal_mass")``): micro-bin m joins group ⌊M·(mass before m + n_m/2)/N⌋."""
        n = self.n
        if n <= 0:
            return float("nan")
        centre = np.cumsum(self.count) - 0.5 * self.count
        group = np.minimum((n_bins * centre / n).astype(np.int64), n_bins - 1)
        diff = np.bincount(group, weights=self.correct_sum - self.confidence_sum, minlength=n_bins)
        return float(np.abs(diff).sum() / n)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON lists and floats."""
        return {
            "count": self.count.tolist(),
            "confidence_sum": self.confidence_sum.tolist(),
            "correct_sum": self.correct_sum.tolist(),
            "nll_sum": self.nll_sum,
            "brier_sum": self.brier_sum,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BinStats:
        return cls(
            count=np.asarray(data["count"], dtype=np.float64),
            confidence_sum=np.asarray(data["confidence_sum"], dtype=np.float64),
            correct_sum=np.asarray(data["correct_sum"], dtype=np.float64),
            nll_sum=float(data.get("nll_sum", 0.0)),
            brier_sum=float(data.get("brier_sum", 0.0)),
        )


def merge(a: BinStats, b: BinStats) -> BinStats:
    """a + b: statistics of the union of two disjoint sets of predictions."""
    return a + b


def ece_ci_from_bins(
    stats: BinStats, n_bins: int = 15, n_boot: int = 200, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """(ECE, lo, hi) without raw rows: a bootstrap at micro-bin resolution.

    A row bootstrap draws micro-bin counts n*_m ~ Multinomial(N, n_m/N), and given n*_m the number
    correct is exactly Binomial(n*_m, A_m/n_m). The one approximation: a resampled row's confidence is
    its micro-bin's mean S_m/n_m (the spread inside a bin of width 1/300 is not stored). Decayed,
    non-integer counts use N rounded to an integer.
    """
    factor = _coarsen_factor(n_bins)
    point = stats.ece(n_bins)
    total = round(stats.n)
    if n_boot < 1 or total < 1:
        return point, point, point
    if not 0.0 < alpha < 1.0:
        raise CalibrationInputError(f"alpha must lie in (0, 1); got {alpha}")
    # only non-empty micro-bins take part: a category of probability 0 draws 0 every time, and dropping
    # them makes the (n_boot, bins) draws several times smaller (served confidences fill few of the 300)
    full = np.flatnonzero(stats.count > 0)
    n = stats.count[full]
    acc = (stats.correct_sum[full] / n).clip(0.0, 1.0)
    conf = stats.confidence_sum[full] / n
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(total, n / n.sum(), size=n_boot)  # (n_boot, non-empty micro-bins)
    correct = rng.binomial(counts, acc)
    coarse = np.zeros((full.size, n_bins))
    coarse[np.arange(full.size), full // factor] = 1.0  # micro-bin → its coarse bin
    diff = (correct - counts * conf) @ coarse
    replicates = np.abs(diff).sum(axis=1) / total
    lo, hi = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(lo), float(hi)
