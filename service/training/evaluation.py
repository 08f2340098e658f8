"""Held-out numbers for the card: test metrics before calibration, and the initial calibrator.

Everything here is computed from the *exported* graph's logits (onnxruntime), i.e. from what will be
served, with the calibration core's metrics and fitting so the numbers match the server's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax

from service.calibration import CalibrationInputError, fit_report, make_calibrator, metrics
from service.repository.card import EvalMetrics


def held_out_metrics(logits: np.ndarray, labels: np.ndarray, *, n_bins: int = 15) -> EvalMetrics:
    """Accuracy, ECE, AdaECE (15 bins) and NLL of softmax(logits) on held-out rows."""
    probs = softmax(np.asarray(logits, dtype=np.float64), axis=1)
    return EvalMetrics(
        accuracy=float(metrics.accuracy(probs, labels)),
        ece=float(metrics.ece(probs, labels, n_bins=n_bins)),
        adaptive_ece=float(metrics.adaptive_ece(probs, labels, n_bins=n_bins)),
        nll=float(metrics.nll(probs, labels)),
    )


def initial_calibrator(
    logits_val: np.ndarray, labels_val: np.ndarray, *, method: str = "auto", seed: int = 0
) -> dict[str, Any]:
    """The ``calibrator.json`` payload: the core's choice on the validation split plus its evaluation.

    ``fit_report`` holds out 30% of the validation rows to evaluate the fitted calibrator.  When the
    validation split is too small for that (e.g. iris: 30 rows), the calibrator is fitted on all of it
    and ``evaluation`` is null.
    """
    try:
        report = fit_report(logits_val, labels_val, method=method, test_size=0.3, seed=seed)
    except CalibrationInputError as exc:
        if "too few" not in str(exc):
            raise
        fitted = make_calibrator(method).fit(logits_val, labels_val)
        return {**fitted.to_dict(), "evaluation": None}
    return {**report.calibrator.to_dict(), "evaluation": report.to_dict()}
