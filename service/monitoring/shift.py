"""Label-free early warning: has the confidence distribution of served predictions moved?

Inputs are histograms of the top-label confidence over the same fine bins (300 right-closed bins, the
O(bins) state the prediction writer keeps for ALL predictions), reference vs current. Pure functions.

- KS: the two-sample Kolmogorov–Smirnov statistic D = max |F_ref − F_cur| evaluated at the bin edges,
  with scipy's asymptotic p-value (``ks_2samp(method="asymp")``: kstwo with n_eff = n·m/(n + m)); above
  n_eff = 1,000 the Kolmogorov limit ``kstwobign.sf(D·√n_eff)`` (within ~3% of kstwo there, and 1,000×
  cheaper: kstwo takes 80 ms at n_eff = 10⁵). With raw samples D can only be larger (the CDF gap inside a
  bin of width 1/300 is not seen); on samples at bin centres it equals ``scipy.stats.ks_2samp``
  (tests/monitoring/test_shift.py).
- PSI: Σ (p_cur − p_ref) ln(p_cur / p_ref) over 10 reference-quantile groups of whole fine bins
  (industry convention: deciles of the reference). Rule of thumb: < 0.1 stable, 0.1–0.25 moderate,
  ≥ 0.25 major shift.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PSI_GROUPS = 10
PSI_WARN = 0.25
KS_ALPHA = 0.01
KS_MIN_EFFECT = 0.1  # with 10⁵ predictions any tiny shift is "significant": also require a visible effect
MIN_PREDICTIONS = 100
KS_EXACT_MAX_N = 1000


def ks_statistic(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Two-sample KS statistic from two histograms on the same bins (max CDF gap at the bin edges)."""
    a = np.asarray(hist_a, dtype=np.float64)
    b = np.asarray(hist_b, dtype=np.float64)
    a, b = a / max(a.sum(), 1e-12), b / max(b.sum(), 1e-12)
    return float(np.abs(np.cumsum(a) - np.cumsum(b)).max())


def ks_test(hist_ref: np.ndarray, hist_cur: np.ndarray) -> tuple[float, float]:
    """(D, asymptotic two-sided p-value) as ``scipy.stats.ks_2samp(..., method="asymp")`` computes it."""
    n, m = float(np.sum(hist_ref)), float(np.sum(hist_cur))
    if n <= 0 or m <= 0:
        return float("nan"), float("nan")
    d = ks_statistic(hist_ref, hist_cur)
    n_eff = round(n * m / (n + m))
    from scipy import stats  # lazy: scipy.stats costs ~1 s and ~90 MiB at start-up; only drift queries use it

    p = stats.kstwo.sf(d, max(n_eff, 1)) if n_eff <= KS_EXACT_MAX_N else stats.kstwobign.sf(d * np.sqrt(n_eff))
    return d, float(np.clip(p, 0.0, 1.0))


def psi(hist_ref: np.ndarray, hist_cur: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index Σ (p − q) ln(p / q) over the given bins (proportions floored at eps)."""
    p = np.maximum(np.asarray(hist_cur, dtype=np.float64) / max(float(np.sum(hist_cur)), 1e-12), eps)
    q = np.maximum(np.asarray(hist_ref, dtype=np.float64) / max(float(np.sum(hist_ref)), 1e-12), eps)
    return float(np.sum((p - q) * np.log(p / q)))


def quantile_groups(hist_ref: np.ndarray, n_groups: int = PSI_GROUPS) -> np.ndarray:
    """Group index of each fine bin: ~equal reference mass per group, fine bins never split.

    Bin m joins group ⌊G·(mass before m + n_m/2)/N⌋ (as ``BinStats.adaptive_ece_approx`` does), so empty
    reference bins join a neighbour and the current mass that lands there still counts."""
    ref = np.asarray(hist_ref, dtype=np.float64)
    total = float(ref.sum())
    centre = np.cumsum(ref) - 0.5 * ref
    return np.minimum((n_groups * centre / max(total, 1e-12)).astype(np.int64), n_groups - 1)


def psi_quantiles(hist_ref: np.ndarray, hist_cur: np.ndarray, n_groups: int = PSI_GROUPS) -> float:
    """PSI over reference-quantile groups of the fine bins (see ``quantile_groups``)."""
    group = quantile_groups(hist_ref, n_groups)
    ref = np.bincount(group, weights=np.asarray(hist_ref, dtype=np.float64), minlength=n_groups)
    cur = np.bincount(group, weights=np.asarray(hist_cur, dtype=np.float64), minlength=n_groups)
    keep = (ref > 0) | (cur > 0)  # mass piled in one fine bin makes fewer, larger groups
    return psi(ref[keep], cur[keep])


def confidence_shift(
    hist_ref: np.ndarray | None, hist_cur: np.ndarray, *, min_predictions: int = MIN_PREDICTIONS,
) -> dict[str, Any]:
    """Verdict on the confidence distribution: ``warning`` when PSI ≥ 0.25, or KS p < 0.01 with D ≥ 0.1."""
    n_cur = float(np.sum(hist_cur))
    out: dict[str, Any] = {"n_current": int(n_cur), "ks": None, "ks_pvalue": None, "psi": None}
    if hist_ref is None or float(np.sum(hist_ref)) <= 0:
        return {**out, "n_reference": 0, "state": "no_reference",
                "reason": "no reference predictions: the reference period has not completed yet"}
    out["n_reference"] = int(np.sum(hist_ref))
    if n_cur < min_predictions:
        return {**out, "state": "insufficient_predictions",
                "reason": f"{int(n_cur)} predictions in the window, {min_predictions} needed"}
    d, p = ks_test(hist_ref, hist_cur)
    value = psi_quantiles(hist_ref, hist_cur)
    out.update(ks=d, ks_pvalue=p, psi=value)
    if value >= PSI_WARN or (p < KS_ALPHA and d >= KS_MIN_EFFECT):
        return {**out, "state": "warning", "reason": f"confidence distribution moved: PSI {value:.3f}, "
                                                     f"KS D {d:.3f} (p = {p:.2g})"}
    return {**out, "state": "ok", "reason": f"PSI {value:.3f} < {PSI_WARN}, KS D {d:.3f} (p = {p:.2g})"}
