"""Platt scaling for binary classifiers, fitted by libsvm's ``sigmoid_train`` (Platt 1999; Lin, Lin &
Weng 2007; papers.md §5).

With the score f = z_1 − z_0 (the log-odds of the model), P(y = 1 | f) = 1 / (1 + exp(A·f + B)). (A, B)
minimise cross-entropy against the smoothed targets t₊ = (N₊ + 1)/(N₊ + 2), t₋ = 1/(N₋ + 2), by
Newton's method with backtracking from A = 0, B = log((N₋ + 1)/(N₊ + 1)). Note the sign: A < 0 when
the score increases with P(y = 1).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import (
    CalibrationInputError,
    FloatArray,
    NotFittedError,
    check_fit_inputs,
    check_logits,
    check_method,
)

_MAX_ITER = 100
_MIN_STEP = 1e-10
_SIGMA = 1e-12  # ridge on the Hessian diagonal
_EPS = 1e-5  # stop when both gradient components are below this


def _objective(f: FloatArray, t: FloatArray, a: float, b: float) -> float:
    """Σ cross-entropy of targets t against 1/(1 + exp(a f + b)), overflow-safe (libsvm's form)."""
    x = a * f + b
    return float(np.sum(np.where(x >= 0, t * x, (t - 1.0) * x) + np.log1p(np.exp(-np.abs(x)))))


def sigmoid_train(scores: FloatArray, positive: FloatArray) -> tuple[float, float]:
    """libsvm ``sigmoid_train``: (A, B) for scores (n,) and 0/1 outcomes (n,)."""
    n_pos = float(positive.sum())
    n_neg = float(positive.size - n_pos)
    t = np.where(positive > 0, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    a, b = 0.0, float(np.log((n_neg + 1.0) / (n_pos + 1.0)))
    value = _objective(scores, t, a, b)
    for _ in range(_MAX_ITER):
        x = a * scores + b
        p = np.exp(-np.logaddexp(0.0, x))  # 1/(1 + e^x): the modelled P(y = 1)
        d2 = p * (1.0 - p)
        d1 = t - p
        h11 = _SIGMA + float(scores @ (scores * d2))
        h22 = _SIGMA + float(d2.sum())
        h21 = float(scores @ d2)
        g1, g2 = float(scores @ d1), float(d1.sum())
        if abs(g1) < _EPS and abs(g2) < _EPS:
            break
        det = h11 * h22 - h21 * h21
        da = -(h22 * g1 - h21 * g2) / det
        db = -(-h21 * g1 + h11 * g2) / det
        slope = g1 * da + g2 * db
        step = 1.0
        while step >= _MIN_STEP:
            new_a, new_b = a + step * da, b + step * db
            new_value = _objective(scores, t, new_a, new_b)
            if new_value < value + 1e-4 * step * slope:
                a, b, value = new_a, new_b, new_value
                break
            step /= 2.0
        if step < _MIN_STEP:
            break  # line search failed: keep the last good (A, B), as libsvm does
    return a, b


def _binary_scores(logits: ArrayLike) -> FloatArray:
    z = check_logits(logits)
    if z.shape[1] != 2:
        raise CalibrationInputError(f"Platt scaling is for binary models (K = 2); got K = {z.shape[1]}")
    out: FloatArray = z[:, 1] - z[:, 0]
    return out


class PlattScaling:
    """Binary only: P(y = 1) = 1/(1 + exp(A·(z_1 − z_0) + B)). Can move the decision threshold."""

    method: ClassVar[str] = "platt"
    preserves_argmax: ClassVar[bool] = False
    a_: float
    b_: float

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        scores = _binary_scores(logits)
        _, y = check_fit_inputs(logits, labels)
        self.a_, self.b_ = sigmoid_train(scores, y.astype(np.float64))
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        try:
            a, b = self.a_, self.b_
        except AttributeError:
            raise NotFittedError("Platt scaling is not fitted; call fit() first") from None
        x = a * _binary_scores(logits) + b
        log_p1, log_p0 = -np.logaddexp(0.0, x), -np.logaddexp(0.0, -x)
        out: FloatArray = np.exp(np.column_stack([log_p0, log_p1]))
        return out

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "a_"):
            raise NotFittedError("Platt scaling is not fitted; call fit() first")
        return {"method": self.method, "params": {"a": self.a_, "b": self.b_}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, cls.method)
        cal = cls()
        cal.a_, cal.b_ = float(params["a"]), float(params["b"])
        return cal
