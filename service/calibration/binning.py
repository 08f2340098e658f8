"""One-vs-rest binning calibrators on q = softmax(z): histogram binning and isotonic regression.

Each class k gets its own map g_k of q_k fitted to the indicator 1[y = k]; predictions are the row
g_k(q_k) renormalised to sum to 1 (Guo et al. 2017 for the multiclass extension; papers.md §5). Both
can change the argmax. Mapped values are floored at 1e-12 before renormalising, so a row never
divides by zero and NLL stays finite.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import (
    PROB_FLOOR,
    FloatArray,
    NotFittedError,
    check_fit_inputs,
    check_logits,
    check_method,
    softmax,
)
from service.calibration.binned import bin_index, weighted_bincount


def _renormalise(mapped: FloatArray) -> FloatArray:
    mapped = np.maximum(mapped, PROB_FLOOR)
    out: FloatArray = mapped / mapped.sum(axis=1, keepdims=True)
    return out


class HistogramBinning:
    """Zadrozny & Elkan 2001: per class, M equal-width (lo, hi] bins of q_k, each mapped to the
    fraction of its calibration rows with y = k (the bin centre when the bin is empty)."""

    method: ClassVar[str] = "histogram"
    preserves_argmax: ClassVar[bool] = False
    values_: FloatArray  # (K, M)

    def __init__(self, *, n_bins: int = 15) -> None:
        self.n_bins = n_bins

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        z, y = check_fit_inputs(logits, labels)
        q = softmax(z)
        n, k = q.shape
        m = self.n_bins
        cell = (bin_index(q, m) + np.arange(k) * m).ravel()
        onehot = np.zeros_like(q)
        onehot[np.arange(n), y] = 1.0
        count = weighted_bincount(cell, None, k * m).reshape(k, m)
        hits = weighted_bincount(cell, onehot.ravel(), k * m).reshape(k, m)
        centre = (np.arange(m) + 0.5) / m
        self.values_ = np.where(count > 0, hits / np.maximum(count, 1.0), centre)
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        try:
            values = self.values_
        except AttributeError:
            raise NotFittedError("histogram binning is not fitted; call fit() first") from None
        q = softmax(check_logits(logits))
        return _renormalise(values[np.arange(q.shape[1]), bin_index(q, self.n_bins)])

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "values_"):
            raise NotFittedError("histogram binning is not fitted; call fit() first")
        return {"method": self.method, "params": {"n_bins": self.n_bins, "values": self.values_.tolist()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, cls.method)
        cal = cls(n_bins=int(params["n_bins"]))
        cal.values_ = np.asarray(params["values"], dtype=np.float64)
        if cal.values_.ndim != 2 or cal.values_.shape[1] != cal.n_bins:
            raise ValueError("histogram binning needs 'values' of shape (K, n_bins)")
        return cal


def fit_isotonic(scores: FloatArray, targets: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Knots (x, g) of the non-decreasing least-squares fit of targets on scores (PAV, with tied
    scores pooled first), reduced to the points that ``np.interp`` needs to reproduce it."""
    x, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    means = weighted_bincount(inverse, targets, x.size) / counts
    from scipy.optimize import isotonic_regression  # lazy: only fitting needs scipy.optimize
    fitted = np.asarray(isotonic_regression(means, weights=counts.astype(np.float64)).x, dtype=np.float64)
    # Keep the ends of each constant block: interpolation between them is flat anyway.
    same_prev = np.r_[False, fitted[1:] == fitted[:-1]]
    same_next = np.r_[fitted[:-1] == fitted[1:], False]
    keep = ~(same_prev & same_next)
    return x[keep], fitted[keep]


class IsotonicCalibrator:
    """Zadrozny & Elkan 2002: per class, isotonic regression of 1[y = k] on q_k, predicted by linear
    interpolation between knots and clipped outside their range (sklearn's out_of_bounds="clip")."""

    method: ClassVar[str] = "isotonic"
    preserves_argmax: ClassVar[bool] = False
    knots_: list[tuple[FloatArray, FloatArray]]

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        z, y = check_fit_inputs(logits, labels)
        q = softmax(z)
        self.knots_ = [fit_isotonic(q[:, k], (y == k).astype(np.float64)) for k in range(q.shape[1])]
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        try:
            knots = self.knots_
        except AttributeError:
            raise NotFittedError("isotonic calibration is not fitted; call fit() first") from None
        q = softmax(check_logits(logits))
        mapped = np.column_stack([np.interp(q[:, k], x, g) for k, (x, g) in enumerate(knots)])
        return _renormalise(mapped)

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "knots_"):
            raise NotFittedError("isotonic calibration is not fitted; call fit() first")
        return {
            "method": self.method,
            "params": {"x": [x.tolist() for x, _ in self.knots_], "y": [g.tolist() for _, g in self.knots_]},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, cls.method)
        cal = cls()
        cal.knots_ = [
            (np.asarray(x, dtype=np.float64), np.asarray(g, dtype=np.float64))
            for x, g in zip(params["x"], params["y"], strict=True)
        ]
        return cal
