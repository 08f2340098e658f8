"""Temperature scaling (Guo et al. 2017): q = softmax(z / T), T fitted by minimising validation NLL.

With β = 1/T the mean NLL L(β) = mean_i[log Σ_k exp(β z_ik) − β z_iy] is convex in β:
L'(β) = mean_i(E_q[z_i] − z_iy) and L''(β) = mean_i Var_q[z_i] ≥ 0. So a safeguarded 1-D Newton
on β converges in a handful of O(nK) passes, with no scipy optimiser overhead (papers.md §5).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import (
    CalibrationInputError,
    FloatArray,
    IntArray,
    NotFittedError,
    check_fit_inputs,
    check_logits,
    check_method,
    log_softmax,
    softmax,
)


def fit_temperature(
    logits: FloatArray, labels: IntArray, *, t_min: float = 1e-2, t_max: float = 1e2, max_iter: int = 100
) -> float:
    """The T in [t_min, t_max] minimising mean NLL of softmax(logits / T); logits (n, K), labels (n,).

    Returns a bound when the optimum lies outside (e.g. separable data drives T → 0).
    """
    d = logits - logits.max(axis=1, keepdims=True)  # ≤ 0, so exp(β d) never overflows for β > 0
    d_y = float(d[np.arange(d.shape[0]), labels].mean())
    # Class-major (K, n) blocks that fit in cache: reductions over classes become row additions, and
    # the 5 elementwise passes per Newton step stay out of main memory.
    d_t = d.T
    step = max(1, (1 << 16) // d.shape[1])
    blocks = [np.ascontiguousarray(d_t[:, i : i + step]) for i in range(0, d.shape[0], step)]
    n = d.shape[0]

    def derivatives(beta: float) -> tuple[float, float]:
        m1_total = var_total = 0.0
        for block in blocks:
            e = np.exp(beta * block)
            s = e.sum(axis=0)
            e *= block
            m1 = e.sum(axis=0) / s
            e *= block
            m1_total += float(m1.sum())
            var_total += float((e.sum(axis=0) / s - m1 * m1).sum())
        return m1_total / n - d_y, var_total / n

    lo, hi = 1.0 / t_max, 1.0 / t_min
    lo_checked = hi_checked = False
    beta = min(max(1.0, lo), hi)
    for _ in range(max_iter):
        grad, hess = derivatives(beta)
        if grad < 0.0:
            lo = beta
        else:
            hi = beta
        step = beta - grad / hess if hess > 0.0 else np.inf
        if not lo < step < hi:
            # Newton left the bracket: first check whether the optimum sits on the bound, else bisect.
            if step >= hi and not hi_checked and hi == 1.0 / t_min:
                hi_checked = True
                if derivatives(hi)[0] <= 0.0:
                    return t_min
            if step <= lo and not lo_checked and lo == 1.0 / t_max:
                lo_checked = True
                if derivatives(lo)[0] >= 0.0:
                    return t_max
            step = 0.5 * (lo + hi)
        if abs(step - beta) <= 1e-12 * beta:
            beta = step
            break
        beta = step
    return float(1.0 / beta)


def temperature_nll(logits: FloatArray, labels: IntArray, temperature: float) -> float:
    """Mean NLL of softmax(logits / T) against labels."""
    log_q = log_softmax(logits / temperature)
    return float(-log_q[np.arange(labels.shape[0]), labels].mean())


class TemperatureScaling:
    """q = softmax(z / T) with T > 0 fitted by NLL. Preserves the argmax. Guo et al. 2017."""

    method: ClassVar[str] = "temperature"
    preserves_argmax: ClassVar[bool] = True
    temperature_: float

    def __init__(self, *, t_min: float = 1e-2, t_max: float = 1e2) -> None:
        if not 0.0 < t_min < t_max:
            raise CalibrationInputError(f"need 0 < t_min < t_max; got t_min={t_min}, t_max={t_max}")
        self.t_min = t_min
        self.t_max = t_max

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        z, y = check_fit_inputs(logits, labels)
        self.temperature_ = fit_temperature(z, y, t_min=self.t_min, t_max=self.t_max)
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        try:
            inv_t = 1.0 / self.temperature_
        except AttributeError:
            raise NotFittedError("temperature scaling is not fitted; call fit() first") from None
        return softmax(check_logits(logits) * inv_t)

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "temperature_"):
            raise NotFittedError("temperature scaling is not fitted; call fit() first")
        return {
            "method": self.method,
            "params": {"temperature": self.temperature_, "t_min": self.t_min, "t_max": self.t_max},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, cls.method)
        cal = cls(t_min=float(params.get("t_min", 1e-2)), t_max=float(params.get("t_max", 1e2)))
        cal.temperature_ = float(params["temperature"])
        return cal
