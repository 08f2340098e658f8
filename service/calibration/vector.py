"""Vector scaling (Guo et al. 2017): q = softmax(w ⊙ z + b), w, b ∈ R^K fitted by NLL (papers.md §5).

2K parameters; unlike temperature scaling it can change the argmax. Fitted with L-BFGS-B and the
analytic gradient, started from the temperature-scaling solution (w = 1/T, b = 0).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import (
    FloatArray,
    IntArray,
    NotFittedError,
    check_fit_inputs,
    check_logits,
    check_method,
    log_softmax_cm,
    softmax,
)
from service.calibration.temperature import fit_temperature


class VectorScaling:
    """q = softmax(w ⊙ z + b). Can change the argmax."""

    method: ClassVar[str] = "vector"
    preserves_argmax: ClassVar[bool] = False
    weight_: FloatArray
    bias_: FloatArray

    def __init__(self, *, max_iter: int = 500) -> None:
        self.max_iter = max_iter

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        z, y = check_fit_inputs(logits, labels)
        self.weight_, self.bias_ = fit_vector(z, y, max_iter=self.max_iter)
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        try:
            weight, bias = self.weight_, self.bias_
        except AttributeError:
            raise NotFittedError("vector scaling is not fitted; call fit() first") from None
        return softmax(check_logits(logits) * weight + bias)

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "weight_"):
            raise NotFittedError("vector scaling is not fitted; call fit() first")
        return {
            "method": self.method,
            "params": {"weight": self.weight_.tolist(), "bias": self.bias_.tolist(), "max_iter": self.max_iter},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, cls.method)
        cal = cls(max_iter=int(params.get("max_iter", 500)))
        cal.weight_ = np.asarray(params["weight"], dtype=np.float64)
        cal.bias_ = np.asarray(params["bias"], dtype=np.float64)
        if cal.weight_.ndim != 1 or cal.weight_.shape != cal.bias_.shape:
            raise ValueError("vector scaling needs 'weight' and 'bias' lists of equal length")
        return cal


def fit_vector(logits: FloatArray, labels: IntArray, *, max_iter: int = 500) -> tuple[FloatArray, FloatArray]:
    """(w, b), each (K,), minimising the mean NLL of softmax(w ⊙ z + b) on logits (n, K), labels (n,)."""
    n, k = logits.shape
    z = np.ascontiguousarray(logits.T)  # class-major (K, n): fast reductions over classes
    cols = np.arange(n)

    def value_and_grad(x: FloatArray) -> tuple[float, FloatArray]:
        w, b = x[:k], x[k:]
        log_q = log_softmax_cm(z * w[:, None] + b[:, None])
        nll = -float(log_q[labels, cols].sum()) / n
        residual = np.exp(log_q, out=log_q)  # q − onehot, in place
        residual[labels, cols] -= 1.0
        return nll, np.concatenate([(residual * z).sum(axis=1), residual.sum(axis=1)]) / n

    start = np.concatenate([np.full(k, 1.0 / fit_temperature(logits, labels)), np.zeros(k)])
    from scipy.optimize import minimize  # lazy: only fitting needs scipy.optimize
    res = minimize(value_and_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return np.asarray(res.x[:k], dtype=np.float64), np.asarray(res.x[k:], dtype=np.float64)
