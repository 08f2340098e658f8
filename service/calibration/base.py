"""The calibrator contract, the input error, and the input checks every calibrator and metric shares.

A calibrator maps logits z of shape (n, K) to calibrated probabilities of shape (n, K). It looks like a
scikit-learn estimator: hyperparameters are keyword-only in ``__init__``, ``fit`` returns ``self``,
learned state ends in ``_`` and ``to_dict``/``from_dict`` round-trip through plain JSON types.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Probabilities are clipped here before a log (papers.md §5, NLL): log(1e-12) ≈ -27.6 keeps NLL finite.
PROB_FLOOR = 1e-12


class CalibrationInputError(ValueError):
    """Input a calibrator or metric cannot use: NaN/inf, wrong shapes, labels out of range,
    too few samples, or a single class."""


class NotFittedError(CalibrationInputError):
    """``predict_proba`` or ``to_dict`` was called before ``fit``."""


@runtime_checkable
class Calibrator(Protocol):
    """What the service needs from a post-hoc calibrator (DESIGN.md §6)."""

    method: ClassVar[str]
    preserves_argmax: ClassVar[bool]

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        """Learn from held-out logits (n, K) and integer labels (n,); returns ``self``."""
        ...

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        """Calibrated probabilities (n, K), float64, rows summing to 1."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """``{"method": ..., "params": {...}}`` with plain JSON types only."""
        ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a fitted calibrator from ``to_dict()`` output."""
        ...


def check_logits(logits: ArrayLike, *, name: str = "logits") -> FloatArray:
    """Return ``logits`` as a float64 (n, K) array with K ≥ 2 and only finite values.

    Kept cheap: it runs on the request path before every ``predict_proba``.
    """
    try:
        z = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationInputError(f"{name} must be a numeric array: {exc}") from None
    if z.ndim != 2:
        raise CalibrationInputError(f"{name} must be a 2-D array (n, K); got shape {z.shape}")
    if z.shape[1] < 2:
        raise CalibrationInputError(f"{name} must have at least 2 classes (columns); got shape {z.shape}")
    if not np.isfinite(z).all():
        raise CalibrationInputError(f"{name} contain NaN or infinite values")
    return z


def check_labels(labels: ArrayLike, n: int, n_classes: int) -> IntArray:
    """Return ``labels`` as int64 (n,), each in [0, n_classes). Integral floats are accepted."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise CalibrationInputError(f"labels must be a 1-D array of length {n}; got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise CalibrationInputError("labels must be integers (class indices)")
    elif y.dtype.kind not in "iub":
        raise CalibrationInputError(f"labels must be integers (class indices); got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise CalibrationInputError(
            f"labels must lie in [0, {n_classes - 1}] for {n_classes} classes; got values from {y.min()} to {y.max()}"
        )
    return y


def check_fit_inputs(logits: ArrayLike, labels: ArrayLike, *, min_samples: int = 2) -> tuple[FloatArray, IntArray]:
    """Validate a fitting set: finite (n, K) logits, labels in range, n ≥ min_samples, ≥ 2 classes present."""
    z = check_logits(logits)
    y = check_labels(labels, z.shape[0], z.shape[1])
    if z.shape[0] < min_samples:
        raise CalibrationInputError(
            f"too few samples to fit a calibrator: got {z.shape[0]}, need at least {min_samples}"
        )
    if np.unique(y).size < 2:
        raise CalibrationInputError(f"labels contain a single class ({int(y[0])}); need at least two")
    return z, y


def check_probabilities(probs: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, IntArray]:
    """Validate metric inputs: finite (n, K) probabilities in [0, 1] (n ≥ 1) and labels in [0, K)."""
    p = check_logits(probs, name="probabilities")
    if p.shape[0] == 0:
        raise CalibrationInputError("probabilities are empty; a metric needs at least one row")
    if p.min() < 0.0 or p.max() > 1.0 + 1e-9:
        raise CalibrationInputError("probabilities must lie in [0, 1]")
    return p, check_labels(labels, p.shape[0], p.shape[1])


def check_method(data: dict[str, Any], method: str) -> dict[str, Any]:
    """Return ``data["params"]`` after checking that ``data`` describes ``method``."""
    if data.get("method") != method:
        raise CalibrationInputError(f"expected a {method!r} calibrator; got method {data.get('method')!r}")
    params = data.get("params")
    if not isinstance(params, dict):
        raise CalibrationInputError(f"calibrator {method!r} has no 'params' object")
    return params


def softmax(logits: FloatArray) -> FloatArray:
    """Row-wise softmax of (n, K) float64 logits: subtract the row max, exp, normalise.

    Plain numpy on purpose: scipy.special.softmax costs several µs of overhead per call, and this is
    on the request path (batch 1 must stay well under 20 µs).
    """
    e: FloatArray = logits - logits.max(axis=1, keepdims=True)
    np.exp(e, out=e)  # in place: one temporary fewer
    e /= e.sum(axis=1, keepdims=True)
    return e


def log_softmax(logits: FloatArray) -> FloatArray:
    """Row-wise log-softmax of (n, K) float64 logits (stable: shift by the row max)."""
    s: FloatArray = logits - logits.max(axis=1, keepdims=True)
    s -= np.log(np.exp(s).sum(axis=1, keepdims=True))
    return s


def log_softmax_cm(s: FloatArray) -> FloatArray:
    """Log-softmax over axis 0 of class-major logits (K, n): used by the fitting loops, where
    reductions over a short class axis of (n, K) arrays would dominate the run time."""
    x: FloatArray = s - s.max(axis=0)
    x -= np.log(np.exp(x).sum(axis=0))
    return x


def logsumexp_cm(x: FloatArray) -> FloatArray:
    """log Σ_k exp(x_k) over axis 0 of (K, n); entries may be −inf but not a whole column."""
    peak = x.max(axis=0)
    out: FloatArray = peak + np.log(np.exp(x - peak).sum(axis=0))
    return out


def logits_from_probabilities(probs: ArrayLike) -> FloatArray:
    """log(clip(p, 1e-12, 1)): models that output probabilities are calibrated through their logs.

    softmax(log p) = p for rows summing to one, so the identity calibrator returns p unchanged.
    """
    p = np.asarray(probs, dtype=np.float64)
    if not np.isfinite(p).all():
        raise CalibrationInputError("probabilities contain NaN or infinite values")
    out: FloatArray = np.maximum(p, PROB_FLOOR)  # clip(p, floor, 1) as two ufuncs: np.clip's wrapper costs µs
    np.minimum(out, 1.0, out=out)
    return np.log(out, out=out)
