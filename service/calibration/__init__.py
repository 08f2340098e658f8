"""Post-hoc calibration: calibrators, metrics, streaming statistics and held-out fitting.

Pure numpy/scipy, no I/O. ``make_calibrator("focal_temperature").fit(logits, labels).predict_proba(z)``;
``metrics.ece(probs, labels, n_bins=15)``; ``streaming.BinStats`` for O(bins) monitoring state.
"""

from service.calibration import metrics, streaming
from service.calibration.base import (
    CalibrationInputError,
    Calibrator,
    NotFittedError,
    logits_from_probabilities,
)
from service.calibration.fitting import FitReport, evaluate, fit_report, paired_nll_gain
from service.calibration.registry import CALIBRATORS, calibrator_from_dict, make_calibrator

__all__ = [
    "CALIBRATORS",
    "CalibrationInputError",
    "Calibrator",
    "FitReport",
    "NotFittedError",
    "calibrator_from_dict",
    "evaluate",
    "fit_report",
    "logits_from_probabilities",
    "make_calibrator",
    "metrics",
    "paired_nll_gain",
    "streaming",
]
