"""Label shift: the class prior of unlabelled traffic by EM (Saerens, Latinne & Decaestecker 2002).

Given calibrated posteriors p̂(y|x_i) under the training prior π^tr and unlabelled rows x_1..x_m:

    π⁽⁰⁾ = π^tr;   E: w_i(y) ∝ (π⁽ˢ⁾_y / π^tr_y)·p̂(y|x_i) (normalised over y);   M: π⁽ˢ⁺¹⁾ = (1/m) Σ_i w_i

iterated to a fixed point (SQUAREM-accelerated, see ``_em``); w_i are the prior-adjusted posteriors. EM
needs *calibrated* posteriors to be hard to beat (Alexandari, Kundaje & Shrikumar 2020), which is what the
service serves. The CI is a bootstrap over rows, with multinomial row weights so that all resamples run as one
vectorised EM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import FloatArray

PRIOR_FLOOR = 1e-12  # a class never seen in training would divide by zero in the E-step
TINY = np.finfo(np.float64).tiny
BACKTRACKS = 4  # halvings of SQUAREM's step before it falls back to the plain EM point


@dataclass(frozen=True)
class PriorEstimate:
    prior: FloatArray  # (K,) π̂
    posteriors: FloatArray  # (m, K) adjusted posteriors w_i
    iterations: int
    converged: bool


def _check(probs: ArrayLike, train_prior: ArrayLike) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(probs, dtype=np.float64)
    prior = np.asarray(train_prior, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or prior.shape != (p.shape[1],):
        raise ValueError("probs must be (m ≥ 1, K) and train_prior (K,)")
    if not (np.all(np.isfinite(p)) and np.all(p >= 0) and np.all(prior >= 0) and prior.sum() > 0):
        raise ValueError("probabilities and the training prior must be finite and non-negative")
    prior = np.maximum(prior / prior.sum(), PRIOR_FLOOR)
    return p, prior / prior.sum()


def _step(p: FloatArray, prior: FloatArray, weights: FloatArray, q: FloatArray) -> tuple[FloatArray, FloatArray]:
    """One EM step for B weightings at once: q′_bk = r_bk Σ_i w_bi p_ik / s_bi with r = q/π^tr and
    s_bi = Σ_j r_bj p_ij; returns q′ and s (the rows' likelihood ratios under q, for ``_log_likelihood``).

    Two (B, m)·(m, K)-sized matrix products instead of a (B, m, K) posterior array: the E-step's normaliser
    is a product, and the M-step's weighted sum of posteriors is the other."""
    r = q / prior
    density = np.maximum(r @ p.T, TINY)
    return np.asarray(r * ((weights / density) @ p), dtype=np.float64), np.asarray(density, dtype=np.float64)


def _log_likelihood(weights: FloatArray, density: FloatArray) -> FloatArray:
    """(B,) the weighted log-likelihood EM increases (up to a constant), from ``_step``'s densities."""
    return np.asarray(np.sum(weights * np.log(density), axis=1), dtype=np.float64)


def _extrapolate(q0: FloatArray, r: FloatArray, v: FloatArray) -> FloatArray:
    """SQUAREM's point q0 − 2αr + α²v (Varadhan & Roland 2008, step length S3: α = −‖r‖/‖v‖ ≤ −1), with α
    halved toward −1 until the point is a prior again (α = −1 gives the plain two-step EM point)."""
    alpha = np.minimum(-np.linalg.norm(r, axis=1) / np.maximum(np.linalg.norm(v, axis=1), TINY), -1.0)
    out = q0 + 2.0 * r + v
    pending = alpha < -1.0
    for _ in range(BACKTRACKS):
        if not pending.any():
            break
        trial = q0 - 2.0 * alpha[:, None] * r + (alpha**2)[:, None] * v
        ok = pending & np.all(trial >= 0.0, axis=1)
        out[ok] = trial[ok]
        pending &= ~ok
        alpha = (alpha - 1.0) / 2.0
    return out


def _em(p: FloatArray, prior: FloatArray, weights: FloatArray, tol: float, max_iter: int
        ) -> tuple[FloatArray, int, bool]:
    """EM for B weightings of the rows at once: weights (B, m) summing to 1 per row; returns the (B, K)
    priors, the most EM steps any weighting took, and whether all converged (an EM step moved no class by
    ``tol``).

    Accelerated by SQUAREM: plain EM crawls when the estimate sits on the simplex's boundary (a class
    absent from the traffic: thousands of steps at a linear rate near 1), and a weighting that converged
    leaves the batch. A cycle keeps the extrapolated point only if its log-likelihood is at least that of the
    cycle's first plain step (else it takes the two-step EM point), so the likelihood never decreases and the
    check costs no extra product: both densities come out of steps the cycle takes anyway."""
    q = np.broadcast_to(prior, (weights.shape[0], prior.size)).copy()
    steps = np.zeros(weights.shape[0], dtype=np.int64)
    converged = np.zeros(weights.shape[0], dtype=bool)
    active = np.arange(weights.shape[0])
    while active.size:
        w, q0 = weights[active], q[active]
        q1, _ = _step(p, prior, w, q0)
        r = q1 - q0
        steps[active] += 1
        q[active] = q1
        done = np.max(np.abs(r), axis=1) < tol
        converged[active[done]] = True
        keep = ~done & (steps[active] < max_iter)
        active, w, q0, q1, r = active[keep], w[keep], q0[keep], q1[keep], r[keep]
        if not active.size:
            break
        q2, density1 = _step(p, prior, w, q1)
        nxt, density_x = _step(p, prior, w, _extrapolate(q0, r, q2 - q1 - r))
        worse = _log_likelihood(w, density_x) < _log_likelihood(w, density1)
        nxt[worse] = q2[worse]
        steps[active] += 2
        q[active] = nxt
    return q, int(steps.max()), bool(converged.all())


def em_prior(probs: ArrayLike, train_prior: ArrayLike, *, tol: float = 1e-10, max_iter: int = 10_000
             ) -> PriorEstimate:
    """π̂ by EM from (m, K) calibrated posteriors; stops when no class moves by ``tol``."""
    p, prior = _check(probs, train_prior)
    q, it, ok = _em(p, prior, np.full((1, p.shape[0]), 1.0 / p.shape[0]), tol, max_iter)
    post = (q[0] / prior) * p  # the adjusted posteriors at π̂
    post /= np.maximum(post.sum(axis=1, keepdims=True), TINY)
    return PriorEstimate(q[0], post, it, ok)


def bootstrap_priors(probs: ArrayLike, train_prior: ArrayLike, *, n_boot: int = 100, seed: int = 0,
                     tol: float = 1e-8, max_iter: int = 2_000) -> FloatArray:
    """(n_boot, K) EM priors of rows resampled with replacement (multinomial counts as row weights)."""
    p, prior = _check(probs, train_prior)
    m = p.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(np.float64) / m
    return _em(p, prior, weights, tol, max_iter)[0]


def total_variation(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """½ Σ_k |a_k − b_k| along the last axis."""
    return np.asarray(0.5 * np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum(axis=-1))
