"""Fit a calibrator on one part of a labelled window and judge it on the other (the admin re-fit path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from service.calibration import metrics
from service.calibration.base import CalibrationInputError, Calibrator, check_fit_inputs, softmax
from service.calibration.registry import make_calibrator
from service.calibration.split import stratified_split

MIN_PART_SIZE = 10  # rows in each of the fit and evaluation parts; below this a CI means nothing


def evaluate(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, n_boot: int = 200, seed: int = 0
) -> dict[str, float]:
    """Held-out metrics of probs (n, K) against labels (n,) as a JSON-ready dict of floats.

    Keys: n, ece, ece_lo, ece_hi (bootstrap 95% CI), adaptive_ece (Mukhoti), mce, classwise_ece,
    brier, brier_lo, brier_hi, nll, nll_lo, nll_hi (bootstrap 95% CIs of the mean per-row loss),
    accuracy, mean_confidence.
    """
    ece, lo, hi = metrics.ece_ci(probs, labels, n_bins=n_bins, n_boot=n_boot, seed=seed)
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(y.size)
    per_row_nll = -np.log(np.clip(p[rows, y], 1e-12, 1.0))
    onehot = np.zeros_like(p)
    onehot[rows, y] = 1.0
    per_row_brier = ((p - onehot) ** 2).sum(axis=1)
    nll_lo, nll_hi = _mean_ci(per_row_nll, n_boot, seed)
    brier_lo, brier_hi = _mean_ci(per_row_brier, n_boot, seed)
    return {
        "n": float(np.shape(labels)[0]),
        "ece": ece,
        "ece_lo": lo,
        "ece_hi": hi,
        "adaptive_ece": metrics.adaptive_ece(probs, labels, n_bins),
        "mce": metrics.mce(probs, labels, n_bins),
        "classwise_ece": metrics.classwise_ece(probs, labels, n_bins),
        "brier": metrics.brier(probs, labels),
        "brier_lo": brier_lo,
        "brier_hi": brier_hi,
        "nll": metrics.nll(probs, labels),
        "nll_lo": nll_lo,
        "nll_hi": nll_hi,
        "accuracy": metrics.accuracy(probs, labels),
        "mean_confidence": metrics.mean_confidence(probs, labels),
    }


def _mean_ci(values: np.ndarray, n_boot: int, seed: int, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap CI of a mean of per-row values."""
    if n_boot < 1 or values.size < 2:
        m = float(values.mean())
        return m, m
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


@dataclass
class FitReport:
    """A fitted calibrator and its held-out metrics before (identity) and after calibration."""

    calibrator: Calibrator
    before: dict[str, float]
    after: dict[str, float]
    fit_index: np.ndarray  # rows of the input the calibrator was fitted on
    eval_index: np.ndarray  # the held-out rows behind ``before`` and ``after``

    @property
    def n_fit(self) -> int:
        return int(self.fit_index.size)

    @property
    def n_eval(self) -> int:
        return int(self.eval_index.size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibrator": self.calibrator.to_dict(),
            "before": dict(self.before),
            "after": dict(self.after),
            "n_fit": self.n_fit,
            "n_eval": self.n_eval,
        }


def fit_report(
    logits: ArrayLike,
    labels: ArrayLike,
    method: str = "temperature",
    *,
    test_size: float = 0.3,
    seed: int = 0,
    n_bins: int = 15,
    n_boot: int = 200,
    require_all_classes: bool = True,
    **params: Any,
) -> FitReport:
    """Split (logits (n, K), labels (n,)) stratified and seeded, fit ``method`` on one part, evaluate
    both the raw softmax and the calibrated probabilities on the other.

    Raises CalibrationInputError when a class of the model has no rows (unless
    ``require_all_classes=False``), or a part would hold fewer than 10 rows.
    """
    z, y = check_fit_inputs(logits, labels)
    counts = np.bincount(y, minlength=z.shape[1])
    missing = np.flatnonzero(counts == 0)
    if require_all_classes and missing.size:
        shown = ", ".join(str(k) for k in missing[:10]) + (", …" if missing.size > 10 else "")
        raise CalibrationInputError(
            f"{missing.size} of {z.shape[1]} classes have no labelled rows (classes {shown}); "
            "widen the window or pass require_all_classes=False"
        )
    fit_idx, eval_idx = stratified_split(y, test_size=test_size, seed=seed)
    if min(fit_idx.size, eval_idx.size) < MIN_PART_SIZE:
        raise CalibrationInputError(
            f"too few labelled rows: {y.size} split into {fit_idx.size} to fit and {eval_idx.size} to "
            f"evaluate; need at least {MIN_PART_SIZE} in each"
        )
    calibrator = make_calibrator(method, **params).fit(z[fit_idx], y[fit_idx])
    z_eval, y_eval = z[eval_idx], y[eval_idx]
    before = evaluate(softmax(z_eval), y_eval, n_bins, n_boot, seed)
    after = evaluate(calibrator.predict_proba(z_eval), y_eval, n_bins, n_boot, seed)
    return FitReport(calibrator, before, after, fit_idx, eval_idx)


def paired_nll_gain(p_old: ArrayLike, p_new: ArrayLike, labels: ArrayLike, *, n_boot: int = 1000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Mean per-row NLL(old) − NLL(new) on the same rows (> 0: new is better), with a 95% bootstrap CI.

    p_old, p_new: (n, K) probabilities; labels: (n,). Paired: both are scored on every row."""
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(y.size)
    old, new = np.asarray(p_old, dtype=np.float64), np.asarray(p_new, dtype=np.float64)
    d = np.log(np.clip(new[rows, y], 1e-12, 1.0)) - np.log(np.clip(old[rows, y], 1e-12, 1.0))
    lo, hi = _mean_ci(d, n_boot, seed)
    return float(d.mean()), lo, hi
