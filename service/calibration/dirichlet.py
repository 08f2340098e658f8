"""Dirichlet calibration with ODIR regularisation (Kull et al. 2019; papers.md §5).

    q̂ = softmax(W·ln q + b),   q = softmax(z),   W ∈ R^{K×K}, b ∈ R^K
fitted by minimising  mean NLL + λ/(K(K−1))·Σ_{i≠j} W_ij² + μ/K·Σ_j b_j²  (ODIR with reg_norm=True:
only off-diagonal weights and intercepts are shrunk). Initialised at the temperature-scaling
solution (W = I/T, b = 0; the reference starts at W = I) and optimised with L-BFGS-B on the analytic
gradient (dirichletcal uses Newton for K < 37, L-BFGS above). ln q is floored at log(1e-12), like the
reference's clipping of q.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import (
    PROB_FLOOR,
    FloatArray,
    IntArray,
    NotFittedError,
    check_fit_inputs,
    check_logits,
    check_method,
    log_softmax,
    log_softmax_cm,
    softmax,
)
from service.calibration.temperature import fit_temperature

_LOG_FLOOR = float(np.log(PROB_FLOOR))


def fit_dirichlet(
    logits: FloatArray, labels: IntArray, *, reg_lambda: float, reg_mu: float, max_iter: int
) -> tuple[FloatArray, FloatArray]:
    """(W (K, K), b (K,)) minimising the ODIR objective on logits (n, K), labels (n,)."""
    n, k = logits.shape
    features = np.ascontiguousarray(np.maximum(log_softmax(logits), _LOG_FLOOR).T)  # (K, n)
    cols = np.arange(n)
    lam = reg_lambda / (k * (k - 1))
    mu = reg_mu / k
    off_diagonal = 1.0 - np.eye(k)

    def value_and_grad(x: FloatArray) -> tuple[float, FloatArray]:
        weight, bias = x[: k * k].reshape(k, k), x[k * k :]
        log_q = log_softmax_cm(weight @ features + bias[:, None])
        nll = -float(log_q[labels, cols].sum()) / n
        residual = np.exp(log_q, out=log_q)  # q − onehot, in place
        residual[labels, cols] -= 1.0
        off = weight * off_diagonal
        value = nll + lam * float((off * off).sum()) + mu * float(bias @ bias)
        grad_w = residual @ features.T / n + 2.0 * lam * off
        grad_b = residual.sum(axis=1) / n + 2.0 * mu * bias
        return value, np.concatenate([grad_w.ravel(), grad_b])

    # Start at temperature scaling (W = I/T, b = 0) instead of the reference's W = I: the same family,
    # many fewer iterations.
    start = np.concatenate([(np.eye(k) / fit_temperature(logits, labels)).ravel(), np.zeros(k)])
    from scipy.optimize import minimize  # lazy: only fitting needs scipy.optimize
    res = minimize(value_and_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return np.asarray(res.x[: k * k].reshape(k, k), dtype=np.float64), np.asarray(res.x[k * k :], dtype=np.float64)


class DirichletCalibrator:
    """q̂ = softmax(W·ln softmax(z) + b) with ODIR regularisation. Can change the argmax.

    The paper tunes λ and μ by cross-validation. Our defaults (``None``) are λ = 0.1·K(K−1) and
    μ = 0.01·K, i.e. 0.1 per off-diagonal weight and 0.01 per intercept after the normalisation:
    with K² weights the normalised penalty must grow with K, else it overfits (on 20,000×100 synthetic
    logits λ = 99 gave held-out NLL 3.16, λ = 990 gave 3.02, temperature scaling 3.00).
    """

    method: ClassVar[str] = "dirichlet"
    preserves_argmax: ClassVar[bool] = False
    weight_: FloatArray
    bias_: FloatArray

    def __init__(self, *, reg_lambda: float | None = None, reg_mu: float | None = None, max_iter: int = 200) -> None:
        self.reg_lambda = reg_lambda
        self.reg_mu = reg_mu
        self.max_iter = max_iter

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        z, y = check_fit_inputs(logits, labels)
        k = z.shape[1]
        reg_lambda = 0.1 * k * (k - 1) if self.reg_lambda is None else self.reg_lambda
        reg_mu = 0.01 * k if self.reg_mu is None else self.reg_mu
        self.weight_, self.bias_ = fit_dirichlet(z, y, reg_lambda=reg_lambda, reg_mu=reg_mu, max_iter=self.max_iter)
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        try:
            weight, bias = self.weight_, self.bias_
        except AttributeError:
            raise NotFittedError("Dirichlet calibration is not fitted; call fit() first") from None
        log_q = np.maximum(log_softmax(check_logits(logits)), _LOG_FLOOR)
        return softmax(log_q @ weight.T + bias)

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "weight_"):
            raise NotFittedError("Dirichlet calibration is not fitted; call fit() first")
        return {
            "method": self.method,
            "params": {
                "weight": self.weight_.tolist(),
                "bias": self.bias_.tolist(),
                "reg_lambda": self.reg_lambda,
                "reg_mu": self.reg_mu,
                "max_iter": self.max_iter,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, cls.method)
        cal = cls(
            reg_lambda=None if params.get("reg_lambda") is None else float(params["reg_lambda"]),
            reg_mu=None if params.get("reg_mu") is None else float(params["reg_mu"]),
            max_iter=int(params.get("max_iter", 200)),
        )
        cal.weight_ = np.asarray(params["weight"], dtype=np.float64)
        cal.bias_ = np.asarray(params["bias"], dtype=np.float64)
        k = cal.bias_.shape[0] if cal.bias_.ndim == 1 else -1
        if cal.weight_.shape != (k, k):
            raise ValueError("Dirichlet calibration needs a K×K 'weight' and a length-K 'bias'")
        return cal
