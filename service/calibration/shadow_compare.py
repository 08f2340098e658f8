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
from service.calibration.sequential import stitching_boundary
from service.calibration.streaming import BinStats

BOUNDS = ("bernstein", "hoeffding")


@dataclass(frozen=True)
class Evidence:
    """The promotion state of one (shadow, serving calibrator) pair: the NLL difference's ``PairedSums`` plus
    Σ clip(d)², the variance process of the empirical-Bernstein bound. Additive."""

    sums: PairedSums = PairedSums()
    clipped_squares: float = 0.0

    def __add__(self, other: Evidence) -> Evidence:
        return Evidence(self.sums + other.sums, self.clipped_squares + other.clipped_squares)


def bernstein_lower_bound(e: Evidence, *, clip: float, alpha: float, v_min: float = 1.0) -> float:
    """Anytime-valid lower confidence bound on the mean clipped improvement, variance-adaptive.

    X_i = clip(d_i, −B, B) ∈ [−B, B]. Howard, Ramdas, McAuliffe & Sekhon 2021, Thm. 4 (empirical Bernstein):
    for any predictable centres X̂_{i−1} ∈ [−B, B], S_t = Σ (X_i − μ_i) is sub-exponential with variance process
    V_t = Σ (X_i − X̂_{i−1})² and scale c = 2B. Here X̂ ≡ 0 (predictable, and independent of label order, so
    the state stays additive across replicas): V_t = Σ clip(d_i)². Sub-exponential implies sub-gamma with the
    same c (ψ_E ≤ ψ_G), so the stitched boundary u_α(V_t; c) of ``sequential.stitching_boundary`` gives
    L_t = (Σ clip(d) − u_α(V_t)) / t, valid at every t at once. Unlike Hoeffding's V_t = t·B², V_t grows
    with the squared differences actually seen, so small improvements are proven with far fewer labels
    (bench/shadow_promotion.py). ``v_min`` is in units of B² (one label at the clip)."""
    n = e.sums.n
    if n == 0:
        return float("-inf")
    u = float(stitching_boundary(e.clipped_squares, alpha, v_min=v_min * clip * clip, c=2.0 * clip))
    return (e.sums.clipped - u) / n


@dataclass(frozen=True)
class PairScore:
    """What a set of labelled rows adds to one (active, shadow) pair."""

    nll: PairedSums  # of NLL_active − NLL_shadow
    nll_clipped_squares: float  # Σ clip(d)², for the empirical-Bernstein bound
    brier: PairedSums  # of Brier_active − Brier_shadow
    nll_active: float  # Σ NLL of the active side (so each side's mean loss can be shown)
    brier_active: float
    active_bins: BinStats  # both sides' fine bins, on the same rows
    shadow_bins: BinStats

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.nll, self.nll_clipped_squares)


def score_pair(probs_active: ArrayLike, probs_shadow: ArrayLike, labels: ArrayLike, *, clip: float) -> PairScore:
    """Paired sums and both sides' bins for probabilities (n, K) of the two calibrators on the same rows."""
    pa, ps = np.asarray(probs_active, np.float64), np.asarray(probs_shadow, np.float64)
    y = np.asarray(labels, dtype=np.int64)
    nll, brier = loss_differences(pa, ps, y)
    active = BinStats.from_predictions(pa, y)
    clipped = np.clip(nll, -clip, clip)
    return PairScore(PairedSums.of(nll, clip), float((clipped * clipped).sum()), PairedSums.of(brier, clip),
                     active.nll_sum, active.brier_sum, active, BinStats.from_predictions(ps, y))



def promotion_bound(evidence: Evidence, *, clip: float, alpha: float, bound: str = "bernstein") -> float:
    """The anytime-valid lower confidence bound L_t of the mean clipped NLL improvement: empirical Bernstein
    (``bernstein_lower_bound``) or Hoeffding (``paired.improvement_lower_bound``)."""
    if bound == "hoeffding":
        return improvement_lower_bound(evidence.sums, clip=clip, alpha=alpha)
    return bernstein_lower_bound(evidence, clip=clip, alpha=alpha)


def should_promote(evidence: Evidence, *, clip: float, alpha: float, margin: float, bound: str = "bernstein"
                   ) -> bool:
    """``if_better_in_shadow``: promote once L_t > margin. Checked after every batch of labels, the chance of
    ever promoting a shadow whose mean clipped improvement is ≤ margin stays ≤ α (Howard et al. 2021)."""
    return promotion_bound(evidence, clip=clip, alpha=alpha, bound=bound) > margin


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
