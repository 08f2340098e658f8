"""Paired comparison of two calibrators on the same labelled rows (shadow vs active), from additive sums.

Per labelled row i both calibrators' probabilities come from the same stored logits, so the loss
difference d_i = loss_active(i) − loss_shadow(i) (NLL or Brier; positive = the shadow is better) is paired.

- Fixed-n interval: mean ± t_{n−1, 1−α/2}·s/√n from (n, Σd, Σd²) — the paired t interval.
- Anytime-valid promotion (``if_better_in_shadow``): with d_i clipped to [−B, B], S_t − tμ is sub-Gaussian
  with variance process t·B² (Hoeffding), so Howard et al.'s stitched boundary gives a lower confidence
  sequence L_t = Σd/t − u_α(t·B²)/t, valid at every t at once: promoting when L_t > margin keeps the
  probability of ever promoting an equal-or-worse shadow ≤ α, however often it is checked.

The state is (n, Σd, Σd², Σclip(d)) per bucket: additive, like every other monitoring table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import PROB_FLOOR, FloatArray
from service.calibration.lazy_special import special  # scipy.special on first use
from service.calibration.sequential import stitching_boundary


def loss_differences(probs_active: ArrayLike, probs_shadow: ArrayLike, labels: ArrayLike
                     ) -> tuple[FloatArray, FloatArray]:
    """(NLL_active − NLL_shadow, Brier_active − Brier_shadow), each (n,), for (n, K) probabilities. NLL with
    probabilities floored at PROB_FLOOR; Brier summed over classes (papers.md)."""
    pa, ps = np.asarray(probs_active, np.float64), np.asarray(probs_shadow, np.float64)
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(y.size)
    nll = -np.log(np.maximum(pa[rows, y], PROB_FLOOR)) + np.log(np.maximum(ps[rows, y], PROB_FLOOR))
    onehot = np.zeros_like(pa)
    onehot[rows, y] = 1.0
    brier = ((pa - onehot) ** 2).sum(axis=1) - ((ps - onehot) ** 2).sum(axis=1)
    return np.asarray(nll, dtype=np.float64), np.asarray(brier, dtype=np.float64)


@dataclass(frozen=True)
class PairedSums:
    """Additive sufficient statistics of one loss difference."""

    n: float = 0.0
    total: float = 0.0
    squares: float = 0.0
    clipped: float = 0.0  # Σ clip(d, −B, B), for the anytime-valid bound

    @classmethod
    def of(cls, d: ArrayLike, clip: float) -> PairedSums:
        x = np.asarray(d, dtype=np.float64)
        return cls(float(x.size), float(x.sum()), float((x * x).sum()), float(np.clip(x, -clip, clip).sum()))

    def __add__(self, other: PairedSums) -> PairedSums:
        return PairedSums(self.n + other.n, self.total + other.total, self.squares + other.squares,
                          self.clipped + other.clipped)


def paired_interval(s: PairedSums, *, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, lo, hi): the paired t interval at level 1 − α (scipy.stats.ttest_rel's confidence_interval)."""
    if s.n < 2:
        return (s.total / s.n if s.n else float("nan")), float("-inf"), float("inf")
    mean = s.total / s.n
    var = max((s.squares - s.n * mean * mean) / (s.n - 1), 0.0)
    half = float(special().stdtrit(s.n - 1, 1 - alpha / 2)) * math.sqrt(var / s.n)
    return mean, mean - half, mean + half


def improvement_lower_bound(s: PairedSums, *, clip: float, alpha: float, v_min: float = 10.0) -> float:
    """Anytime-valid lower confidence bound L_t on the mean clipped improvement (module docstring)."""
    if s.n == 0:
        return float("-inf")
    u = float(stitching_boundary(s.n * clip * clip, alpha, v_min=v_min * clip * clip))
    return (s.clipped - u) / s.n
