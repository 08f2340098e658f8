"""``ClasswiseStats``: the (K, M) table of (n_km, Σ q_ik, Σ 1[y_i = k]) behind classwise ECE, O(K·M) and
additive like ``streaming.BinStats`` (merge shards by adding, query any window): per class k, equal-width
right-closed bins of q_k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import CalibrationInputError, FloatArray, check_probabilities
from service.calibration.binned import bin_index, weighted_bincount


@dataclass
class ClasswiseStats:
    """Per (class k, equal-width bin m of q_k): count, Σ q_ik, Σ 1[y_i = k]; arrays (K, M) float64."""

    count: FloatArray
    prob_sum: FloatArray
    label_sum: FloatArray

    def __post_init__(self) -> None:
        for name in ("count", "prob_sum", "label_sum"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        if self.count.ndim != 2 or not self.count.shape == self.prob_sum.shape == self.label_sum.shape:
            raise CalibrationInputError("ClasswiseStats arrays must share one (K, n_bins) shape")

    @classmethod
    def empty(cls, n_classes: int, n_bins: int = 15) -> ClasswiseStats:
        shape = (n_classes, n_bins)
        return cls(np.zeros(shape), np.zeros(shape), np.zeros(shape))

    @classmethod
    def from_predictions(cls, probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> ClasswiseStats:
        p, y = check_probabilities(probs, labels)
        n, k = p.shape
        cell = (bin_index(p, n_bins) + np.arange(k)[None, :] * n_bins).ravel()
        onehot = np.zeros_like(p)
        onehot[np.arange(n), y] = 1.0
        size = k * n_bins
        return cls(
            count=weighted_bincount(cell, None, size).reshape(k, n_bins),
            prob_sum=weighted_bincount(cell, p.ravel(), size).reshape(k, n_bins),
            label_sum=weighted_bincount(cell, onehot.ravel(), size).reshape(k, n_bins),
        )

    def __add__(self, other: ClasswiseStats) -> ClasswiseStats:
        if self.count.shape != other.count.shape:
            raise CalibrationInputError(f"cannot merge classwise tables {self.count.shape} and {other.count.shape}")
        return ClasswiseStats(
            self.count + other.count, self.prob_sum + other.prob_sum, self.label_sum + other.label_sum
        )

    def merge(self, other: ClasswiseStats) -> ClasswiseStats:
        return self + other

    @property
    def n(self) -> float:
        """Rows seen (every row lands once in every class's histogram)."""
        return float(self.count[0].sum())

    def per_class_ece(self) -> FloatArray:
        """(K,) Σ_m |L_km − P_km| / N. NaN when empty."""
        n = self.n
        if n <= 0:
            return np.full(self.count.shape[0], np.nan)
        out: FloatArray = np.abs(self.label_sum - self.prob_sum).sum(axis=1) / n
        return out

    def classwise_ece(self) -> float:
        """Mean over classes of ``per_class_ece``; equals ``metrics.classwise_ece`` on the raw rows."""
        return float(self.per_class_ece().mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count.tolist(),
            "prob_sum": self.prob_sum.tolist(),
            "label_sum": self.label_sum.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClasswiseStats:
        return cls(np.asarray(data["count"]), np.asarray(data["prob_sum"]), np.asarray(data["label_sum"]))
