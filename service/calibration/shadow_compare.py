"""Shadow vs active on the same labelled rows: what one batch of labels adds, the promotion rule, and the
ECE difference with a bootstrap over prediction-time buckets.

Sign convention (``paired``): every difference is active − shadow, so positive means the shadow is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import FloatArray
from service.calibration.binned import ece_from_sums
from service.calibration.paired import PairedSums, improvement_lower_bound, loss_differences
from service.calibration.streaming import BinStats


@dataclass(frozen=True)
class PairScore:
    """What a set of labelled rows adds to one (active, shadow) pair."""

    nll: PairedSums  # of NLL_active − NLL_shadow
    brier: PairedSums  # of Brier_active − Brier_shadow
    nll_active: float  # Σ NLL of the active side (so each side's mean loss can be shown)
    brier_active: float
    active_bins: BinStats  # both sides' fine bins, on the same rows
    shadow_bins: BinStats


def score_pair(probs_active: ArrayLike, probs_shadow: ArrayLike, labels: ArrayLike, *, clip: float) -> PairScore:
    """Paired sums and both sides' bins for probabilities (n, K) of the two calibrators on the same rows."""
    pa, ps = np.asarray(probs_active, np.float64), np.asarray(probs_shadow, np.float64)
    y = np.asarray(labels, dtype=np.int64)
    nll, brier = loss_differences(pa, ps, y)
    active = BinStats.from_predictions(pa, y)
    return PairScore(PairedSums.of(nll, clip), PairedSums.of(brier, clip), active.nll_sum, active.brier_sum,
                     active, BinStats.from_predictions(ps, y))


def promotion_bound(evidence: PairedSums, *, clip: float, alpha: float) -> float:
    """The anytime-valid lower confidence bound L_t of the mean clipped NLL improvement (``paired``)."""
    return improvement_lower_bound(evidence, clip=clip, alpha=alpha)


def should_promote(evidence: PairedSums, *, clip: float, alpha: float, margin: float) -> bool:
    """``if_better_in_shadow``: promote once L_t > margin. Checked after every batch of labels, the chance of
    ever promoting a shadow whose mean clipped improvement is ≤ margin stays ≤ α (Howard et al. 2021)."""
    return promotion_bound(evidence, clip=clip, alpha=alpha) > margin


def _ece_rows(count: FloatArray, conf: FloatArray, correct: FloatArray) -> FloatArray:
    """ECE of each row of (R, M) per-bin sums (NaN for an empty row)."""
    n = count.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.abs(correct - conf).sum(axis=1) / n, dtype=np.float64)


def ece_difference(active: FloatArray, shadow: FloatArray, *, n_boot: int = 500, seed: int = 0,
                   alpha: float = 0.05, min_buckets: int = 10
                   ) -> tuple[float, float, float, float | None, float | None]:
    """(ECE_active, ECE_shadow, ECE_active − ECE_shadow, lo, hi) from per-bucket coarse bins.

    ``active`` and ``shadow`` have shape (B, 3, M): per prediction-time bucket, (count, Σ confidence,
    Σ correct) over M equal-width bins, both sides on the same labelled rows. The point values are the binned
    ECEs of the summed bins (equal to ``metrics.ece`` on the raw rows). The interval is a bootstrap over
    buckets: a bucket is drawn whole, both sides together, so the pairing of the rows is kept and dependence
    inside a bucket is respected. It is the *basic* (reverse-percentile) interval [2θ̂ − q_hi, 2θ̂ − q_lo]:
    binned ECE is biased upward in small samples, more for the better-calibrated side, and the percentile
    interval inherits that bias twice (it covered the true difference 2–5% of the time in the test world; the
    basic interval ~85% at nominal 95%, tests/calibration/test_shadow_compare.py). With fewer than
    ``min_buckets`` labelled buckets there is no interval (None): a bootstrap over a handful of clusters does
    not cover.
    """
    a, s = np.asarray(active, np.float64), np.asarray(shadow, np.float64)
    ece_a, ece_s = ece_from_sums(*a.sum(axis=0)), ece_from_sums(*s.sum(axis=0))
    diff = ece_a - ece_s
    used = a[:, 0].sum(axis=1) > 0
    if int(used.sum()) < min_buckets or n_boot < 1:
        return ece_a, ece_s, diff, None, None
    a, s = a[used], s[used]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))
    counts = np.stack([np.bincount(d, minlength=a.shape[0]) for d in draws]).astype(np.float64)  # (n_boot, B)
    ra = np.einsum("rb,bkm->rkm", counts, a)
    rs = np.einsum("rb,bkm->rkm", counts, s)
    replicates = _ece_rows(ra[:, 0], ra[:, 1], ra[:, 2]) - _ece_rows(rs[:, 0], rs[:, 1], rs[:, 2])
    q_lo, q_hi = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return ece_a, ece_s, diff, float(2.0 * diff - q_hi), float(2.0 * diff - q_lo)
