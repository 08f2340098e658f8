"""Label shift: the class prior of unlabelled traffic by EM (Saerens, Latinne & Decaestecker 2002).

Given calibrated posteriors p̂(y|x_i) under the training prior π^tr and unlabelled rows x_1..x_m:

    π⁽⁰⁾ = π^tr;   E: w_i(y) ∝ (π⁽ˢ⁾_y / π^tr_y)·p̂(y|x_i) (normalised over y);   M: π⁽ˢ⁺¹⁾ = (1/m) Σ_i w_i

iterated to a fixed point; w_i are the prior-adjusted posteriors. EM needs *calibrated* posteriors to be
hard to beat (Alexandari, Kundaje & Shrikumar 2020), which is what the service serves. The CI is a
bootstrap over rows, with multinomial row weights so that all resamples run as one vectorised EM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import FloatArray

PRIOR_FLOOR = 1e-12  # a class never seen in training would divide by zero in the E-step


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


def _em(p: FloatArray, prior: FloatArray, weights: FloatArray, tol: float, max_iter: int
        ) -> tuple[FloatArray, FloatArray, int, bool]:
    """EM for B weightings of the rows at once: weights (B, m) summing to 1 per row; returns (B, K) priors,
    the (B, m, K) posteriors of the last E-step, iterations, converged."""
    q = np.broadcast_to(prior, (weights.shape[0], prior.size)).copy()
    post = np.empty((weights.shape[0], *p.shape))
    for it in range(1, max_iter + 1):
        post = (q / prior)[:, None, :] * p[None, :, :]
        post /= np.maximum(post.sum(axis=2, keepdims=True), np.finfo(np.float64).tiny)
        new = np.einsum("bm,bmk->bk", weights, post)
        if float(np.max(np.abs(new - q))) < tol:
            return new, post, it, True
        q = new
    return q, post, max_iter, False


def em_prior(probs: ArrayLike, train_prior: ArrayLike, *, tol: float = 1e-10, max_iter: int = 10_000
             ) -> PriorEstimate:
    """π̂ by EM from (m, K) calibrated posteriors; stops when no class moves by ``tol``."""
    p, prior = _check(probs, train_prior)
    q, post, it, ok = _em(p, prior, np.full((1, p.shape[0]), 1.0 / p.shape[0]), tol, max_iter)
    return PriorEstimate(q[0], post[0], it, ok)


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
