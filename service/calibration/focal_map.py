"""The focal calibration map ψ_γ (Komisarenko & Kull 2024; papers.md §2.2), computed in log space.

A model trained with focal loss FL_γ(q, y) = −(1 − q_y)^γ·log q_y predicts q*, whose true class
probabilities are η = ψ_γ(q*) with
    h_γ(q) = q / [ (1 − q)^γ · (1 − γ·r(q)) ],   r(q) = q·log q / (1 − q),
    ψ_γ(q)_k = h_γ(q_k) / Σ_j h_γ(q_j).
So log h_k = a_k − γ·b_k − log(1 − γ·r_k) with a = log q and b = log(1 − q). Everything is taken from
the logits, never from rounded probabilities: b of the top class is the logsumexp of the other
classes' log-probabilities (exact even when 1 − q underflows), and r → −1 as q → 1 via a series.
Finite for logits of ±1e4 and any K ≥ 2. γ = 0 is the identity; h_γ is increasing for γ ≥ 0, so ψ_γ
keeps the class ranking (and, by papers.md §2.2, the argmax for γ ∈ [−1, 0) too).

Internally arrays are class-major, (K, n): reductions over classes then run as fast row additions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import (
    PROB_FLOOR,
    CalibrationInputError,
    FloatArray,
    IntArray,
    log_softmax_cm,
    logsumexp_cm,
)

_LOG_HALF = float(np.log(0.5))
# Below log u = −20 (u = 1 − q < 2e-9), r = (1 − u)·log(1 − u)/u is evaluated by its series −1 + u/2.
_SERIES_LOG_U = -20.0
MIN_GAMMA = -1.0


@dataclass(frozen=True)
class FocalParts:
    """γ-independent pieces of the map for class-major logits s (K, n): a = log q, b = log(1 − q),
    r = q·log q/(1 − q), the top class per column, and rest_log = log(q_j / (1 − q_top)) (−inf at top)."""

    a: FloatArray
    b: FloatArray
    r: FloatArray
    top: IntArray
    rest_log: FloatArray

    @classmethod
    def from_logits(cls, s: FloatArray, top: IntArray | None = None) -> FocalParts:
        """``top`` = argmax over classes, if known (it does not change with the temperature)."""
        cols = np.arange(s.shape[1])
        if top is None:
            top = np.asarray(s.argmax(axis=0), dtype=np.int64)
        a = log_softmax_cm(s)
        with np.errstate(divide="ignore"):
            b = np.log1p(-np.exp(a))  # accurate where q ≤ 1/2, i.e. for every class but the top one
        others = a.copy()
        others[top, cols] = -np.inf
        b_top = logsumexp_cm(others)
        b[top, cols] = b_top
        confident = b_top < _LOG_HALF
        if confident.any():  # log q_top = log(1 − u) is exact from u when q_top > 1/2
            a[top[confident], cols[confident]] = np.log1p(-np.exp(b_top[confident]))
        r = a * np.exp(a - np.maximum(b, _SERIES_LOG_U))
        series = b < _SERIES_LOG_U
        if series.any():
            r[series] = -1.0 + 0.5 * np.exp(b[series])
        return cls(a=a, b=b, r=r, top=top, rest_log=others - b_top)

    def log_one_minus_gamma_r(self, gamma: float) -> FloatArray:
        """log(1 − γ·r), (K, n); exact in the series region even at γ = −1, where 1 + r ≈ u/2 → 0."""
        with np.errstate(divide="ignore"):  # γ = −1: log(1 + r) = −inf where u underflows; replaced below
            out: FloatArray = np.log1p(-gamma * self.r)
            if gamma < 0.0:
                series = self.b < _SERIES_LOG_U
                if series.any():
                    out[series] = np.logaddexp(np.log1p(gamma), np.log(-0.5 * gamma) + self.b[series])
        return out

    def log_h(self, gamma: float) -> FloatArray:
        """Unnormalised log h_γ(q), (K, n)."""
        out: FloatArray = self.a - gamma * self.b - self.log_one_minus_gamma_r(gamma)
        return out


def check_gamma(gamma: float) -> float:
    if not np.isfinite(gamma) or gamma < MIN_GAMMA:
        raise CalibrationInputError(f"focal gamma must be a finite number ≥ {MIN_GAMMA}; got {gamma}")
    return float(gamma)


def log_focal_map_logits(logits: FloatArray, gamma: float) -> FloatArray:
    """log ψ_γ(softmax(logits)), (n, K), from float64 logits (n, K)."""
    gamma = check_gamma(gamma)
    s = np.ascontiguousarray(logits.T)
    if gamma == 0.0:
        return np.ascontiguousarray(log_softmax_cm(s).T)
    log_h = FocalParts.from_logits(s).log_h(gamma)
    return np.ascontiguousarray((log_h - logsumexp_cm(log_h)).T)


def focal_map(probs: ArrayLike, gamma: float) -> FloatArray:
    """ψ_γ(q) for probabilities q (n, K) (rows summing to 1; clipped at 1e-12 before the log)."""
    s = np.log(np.clip(np.asarray(probs, dtype=np.float64), PROB_FLOOR, 1.0))
    if s.ndim != 2:
        raise CalibrationInputError(f"probabilities must be a 2-D array (n, K); got shape {s.shape}")
    return np.exp(log_focal_map_logits(s, gamma))
