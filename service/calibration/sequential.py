"""Anytime-valid test of calibration in the large: a confidence sequence for the gap E[correct − confidence].

A fixed-window test checked every few seconds has a false-alarm rate per *check*; this one bounds the
probability of *ever* alarming, however often it is checked (Howard, Ramdas, McAuliffe & Sekhon 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist.).

Model. Label i has top-label confidence c_i (known before the label) and is correct with probability p_i.
H0(g, δ): p_i ∈ [c_i + g − δ, c_i + g + δ] for every label (calibrated, up to a reference gap g and a
tolerance δ). Under H0 the centred sum S_t = Σ_{i≤t} (1[correct_i] − p_i) is a martingale whose
increments are ≤ 1 and whose conditional variances are p_i(1 − p_i) ≤ v̂_i, with

    v̂_i = max_{c ∈ micro-bin(c_i)} c(1 − c) + δ           (|p(1−p) − c(1−c)| ≤ |p − c| ≤ δ)

— a per-label bound that depends only on the label's fine bin, so V̂_t = Σ_m n_m·v̂_m is predictable and
additive. Increments ≤ 1 make S_t sub-Poisson with scale 1 (Bennett), hence sub-gamma with scale c = 1/3
(Howard et al. 2020, "Time-uniform Chernoff bounds", Prop. 2 and Table 3). The polynomial stitched
boundary u_α(v) (Howard et al. 2021, Thm. 1) then gives P(∃t: ±S_t ≥ u_{α/2}(V̂_t)) ≤ α, so the sequence

    C_t = [ Ĝ_t − u_{α/2}(V̂_t)/t ,  Ĝ_t + u_{α/2}(V̂_t)/t ],   Ĝ_t = (Σ correct − Σ c)/t

covers the mean gap at every t simultaneously, and "C_t misses [g − δ, g + δ]" is an alarm whose
false-alarm probability is ≤ α over the calibrator's whole life.

State: the sums of the per-bucket tables (n_m, Σc, Σcorrect per fine bin) — additive, independent of label
order and of how many replicas wrote them, so no per-label read-modify-write is needed (the predictable
plug-in empirical-Bernstein CS of Waudby-Smith & Ramdas needs the labels in order, one row lock per label).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import FloatArray
from service.calibration.binned import bin_edges, bin_index
from service.calibration.lazy_special import special  # scipy.special on first use

SUB_GAMMA_SCALE = 1.0 / 3.0  # increments ≤ 1: sub-Poisson(1) ⊂ sub-gamma(1/3)


def stitching_boundary(
    v: ArrayLike, alpha: float, *, v_min: float, c: float = 0.0, s: float = 1.4, eta: float = 2.0
) -> FloatArray:
    """Polynomial stitched boundary u_α(v) of Howard et al. 2021, Thm. 1 (eq. 10), for a sub-gamma process
    with scale c: P(∃t: S_t ≥ u_α(V_t)) ≤ α. With ℓ(v) = s·log log(ηv/m) + log(ζ(s) / (α·log^s η)),

        u_α(v) = sqrt(k1²·v·ℓ(v) + k2²·c²·ℓ(v)²) + k2·c·ℓ(v),
        k1 = (η^¼ + η^-¼)/√2,  k2 = (√η + 1)/2,

    for v ≥ m = ``v_min`` (the boundary is held at u_α(m) below it, as ``confseq`` does). Shape of ``v``."""
    if not 0.0 < alpha < 1.0 or v_min <= 0 or s <= 1 or eta <= 1 or c < 0:
        raise ValueError("need 0 < alpha < 1, v_min > 0, s > 1, eta > 1 and c ≥ 0")
    vv = np.maximum(np.asarray(v, dtype=np.float64), v_min)
    ell = s * np.log(np.log(eta * vv / v_min)) + np.log(special().zeta(s) / (alpha * np.log(eta) ** s))
    k1 = (eta**0.25 + eta**-0.25) / np.sqrt(2.0)
    k2 = (np.sqrt(eta) + 1.0) / 2.0
    return np.asarray(np.sqrt(k1**2 * vv * ell + (k2 * c * ell) ** 2) + k2 * c * ell, dtype=np.float64)


def bin_variance_bound(n_bins: int) -> FloatArray:
    """(n_bins,) max of c(1 − c) over each right-closed equal-width bin ((m/M, (m+1)/M]): 1/4 for the bin
    holding 1/2, else the value at the edge nearer to 1/2."""
    edges = bin_edges(n_bins)
    nearest = np.clip(0.5, edges[:-1], edges[1:])
    return np.asarray(nearest * (1.0 - nearest), dtype=np.float64)


@dataclass(frozen=True)
class GapSequence:
    """The confidence sequence for E[correct − confidence] at the current t, and its verdict."""

    n: float
    gap: float  # Ĝ_t = accuracy − mean confidence (positive: under-confident)
    lo: float
    hi: float
    variance: float  # V̂_t
    alarm: bool  # C_t misses [center − tolerance, center + tolerance]


def gap_sequence(
    count: ArrayLike, confidence_sum: ArrayLike, correct_sum: ArrayLike, *, alpha: float, center: float = 0.0,
    tolerance: float = 0.0, v_min: float = 10.0,
) -> GapSequence:
    """Confidence sequence at level 1 − α from per-fine-bin sums ((M,) each, M equal-width right-closed bins
    of the top-label confidence, M = 300 in the service). ``v_min`` is the intrinsic time (Σ variance, ≈ 0.1
    per label at 90% confidence) the boundary is tightest for; any value keeps the guarantee."""
    n_m = np.asarray(count, dtype=np.float64)
    n = float(n_m.sum())
    if n <= 0:
        return GapSequence(0.0, float("nan"), float("-inf"), float("inf"), 0.0, False)
    v = float((n_m * (bin_variance_bound(n_m.size) + tolerance)).sum())
    u = float(stitching_boundary(v, alpha / 2.0, v_min=v_min, c=SUB_GAMMA_SCALE))
    gap = (float(np.sum(correct_sum)) - float(np.sum(confidence_sum))) / n
    lo, hi = gap - u / n, gap + u / n
    return GapSequence(n, gap, lo, hi, v, bool(lo > center + tolerance or hi < center - tolerance))


def gap_sequence_path(
    confidence: ArrayLike, correct: ArrayLike, *, alpha: float, center: float = 0.0, tolerance: float = 0.0,
    v_min: float = 10.0, n_bins: int = 300,
) -> tuple[FloatArray, FloatArray, np.ndarray]:
    """(lo, hi, alarm) after each of t = 1..n labels in order, shape (n,) each: ``gap_sequence`` evaluated at
    every t at once (for simulations; the service reads the sums)."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    idx = bin_index(conf, n_bins)
    t = np.arange(1, conf.size + 1, dtype=np.float64)
    v = np.cumsum(bin_variance_bound(n_bins)[idx] + tolerance)
    u = stitching_boundary(v, alpha / 2.0, v_min=v_min, c=SUB_GAMMA_SCALE)
    gap = np.cumsum(hit - conf) / t
    lo, hi = gap - u / t, gap + u / t
    return lo, hi, (lo > center + tolerance) | (hi < center - tolerance)
