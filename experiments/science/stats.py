"""Paired statistics over seeds: mean ± 95% CI (Student t), the paired Wilcoxon signed-rank p-value and
the per-seed win count.  Every comparison pairs two arms on the same seed (same split, same init seed)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MeanCI:
    mean: float
    half_width: float  # 95% CI is mean ± half_width (nan with one value)
    n: int

    def __str__(self) -> str:
        return fmt_ci(self.mean, self.half_width)


def fmt_ci(mean: float, half: float) -> str:
    scale = max(abs(mean), abs(half) if math.isfinite(half) else 0.0)
    digits = 4 if scale < 0.1 else 3
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if math.isfinite(half) else f"{mean:.{digits}f}"


def mean_ci(values: np.ndarray, level: float = 0.95) -> MeanCI:
    """Mean and the half-width of its Student-t confidence interval."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return MeanCI(float(x.mean()) if x.size else math.nan, math.nan, int(x.size))
    t = float(stats.t.ppf(0.5 + level / 2, df=x.size - 1))
    return MeanCI(float(x.mean()), t * float(x.std(ddof=1)) / math.sqrt(x.size), int(x.size))


@dataclass(frozen=True)
class Paired:
    """``a`` against ``b`` on the same seeds; ``diff`` = a − b; ``wins`` counts seeds where a is better."""

    a: MeanCI
    b: MeanCI
    diff: MeanCI
    p_value: float
    wins: int
    n: int

    @property
    def win_text(self) -> str:
        return f"{self.wins}/{self.n}"


def wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value (exact for small n without ties; 1.0 if all diffs are 0)."""
    d = np.asarray(diff, dtype=np.float64)
    if d.size == 0 or np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired(a: np.ndarray, b: np.ndarray, *, lower_is_better: bool) -> Paired:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape:
        raise ValueError(f"paired samples need equal shapes; got {a64.shape} and {b64.shape}")
    diff = a64 - b64
    wins = int(np.sum(diff < 0)) if lower_is_better else int(np.sum(diff > 0))
    return Paired(mean_ci(a64), mean_ci(b64), mean_ci(diff), wilcoxon_p(diff), wins, int(diff.size))


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rank correlation and its two-sided p-value."""
    result = stats.spearmanr(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return float(result.statistic), float(result.pvalue)
