"""Held-out numbers for the card: test metrics before calibration, and the initial calibrator.

Everything here is computed from the *exported* graph's logits (onnxruntime), i.e. from what will be
served, with the calibration core's metrics and fitting so the numbers match the server's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax

from service.calibration import CalibrationInputError, calibrator_from_dict, fit_report, make_calibrator, metrics
from service.calibration.conformal_fitting import fit_conformal
from service.calibration.split import stratified_split
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


def initial_conformal(
    logits_val: np.ndarray, labels_val: np.ndarray, calibrator_payload: dict[str, Any], *, kind: str = "lac",
    seed: int = 0,
) -> dict[str, Any]:
    """The ``conformal.json`` payload: a conformal calibrator on the calibrated probabilities of the validation
    rows that ``initial_calibrator`` held out (the same seeded 30% split), so no row scores its own fit.

    ``kind`` is ``lac``, ``aps``, ``mondrian_lac`` or ``mondrian_aps``. When the calibrator had to use every
    validation row (``evaluation`` null) the sets are fitted on those same rows, and ``fitted_on`` says so.
    """
    mondrian = kind.startswith("mondrian_")
    score = kind.removeprefix("mondrian_")
    y = np.asarray(labels_val, dtype=np.int64)
    held_out = calibrator_payload.get("evaluation") is not None
    rows = stratified_split(y, test_size=0.3, seed=seed)[1] if held_out else np.arange(y.size)
    probs = calibrator_from_dict(calibrator_payload).predict_proba(np.asarray(logits_val)[rows])
    report = fit_conformal(probs, y[rows], score=score, mondrian=mondrian, seed=seed)  # type: ignore[arg-type]
    fitted_on = ("validation rows held out from the calibrator" if held_out
                 else "all validation rows (too few to hold out)")
    return {**report.to_dict(), "fitted_on": fitted_on}
