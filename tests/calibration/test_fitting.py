"""fit_report / evaluate: held-out before/after metrics for the admin re-fit path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.calibration import CalibrationInputError, FitReport, evaluate, fit_report, metrics
from tests.calibration.factories import overconfident_logits, softmax

KEYS = {
    "n", "ece", "ece_lo", "ece_hi", "adaptive_ece", "mce", "classwise_ece",
    "brier", "brier_lo", "brier_hi", "nll", "nll_lo", "nll_hi", "accuracy", "mean_confidence",
}  # fmt: skip


def test_report_shows_the_improvement_on_held_out_rows() -> None:
    z, y = overconfident_logits(4000, 10, seed=0, temperature=2.0)
    report = fit_report(z, y, "temperature", n_boot=100)
    assert isinstance(report, FitReport)
    assert report.n_fit + report.n_eval == 4000 and report.n_eval == pytest.approx(1200, abs=10)
    assert set(report.before) == set(report.after) == KEYS
    assert report.after["ece"] < report.before["ece"] and report.after["nll"] < report.before["nll"]
    assert report.after["accuracy"] == report.before["accuracy"]  # TS keeps the argmax
    assert report.after["ece_lo"] <= report.after["ece_hi"]
    assert report.calibrator.temperature_ == pytest.approx(2.0, rel=0.1)  # type: ignore[attr-defined]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["calibrator"]["method"] == "temperature" and data["n_eval"] == report.n_eval


def test_params_reach_the_calibrator() -> None:
    z, y = overconfident_logits(600, 3, seed=1)
    report = fit_report(z, y, "focal_temperature", gamma=2.0, n_boot=20)
    assert report.calibrator.to_dict()["params"]["gamma"] == 2.0


def test_evaluate_is_the_metrics_module() -> None:
    z, y = overconfident_logits(500, 4, seed=2)
    p = softmax(z)
    out = evaluate(p, y, n_bins=10, n_boot=50, seed=3)
    assert out["ece"] == metrics.ece(p, y, 10) and out["brier"] == metrics.brier(p, y)
    assert (out["ece"], out["ece_lo"], out["ece_hi"]) == metrics.ece_ci(p, y, 10, n_boot=50, seed=3)


def test_missing_classes_are_named() -> None:
    z, y = overconfident_logits(300, 5, seed=3)
    y = np.where(y == 3, 0, y)
    with pytest.raises(CalibrationInputError, match=r"1 of 5 classes have no labelled rows \(classes 3\)"):
        fit_report(z, y)
    assert fit_report(z, y, require_all_classes=False, n_boot=10).n_eval > 0


def test_too_few_rows() -> None:
    z, y = overconfident_logits(20, 2, seed=4)
    with pytest.raises(CalibrationInputError, match="too few labelled rows"):
        fit_report(z, y)


def test_evaluate_gives_bootstrap_cis_for_nll_and_brier() -> None:
    from sklearn.metrics import log_loss

    from service.calibration import evaluate

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(500, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=500)
    out = evaluate(probs, labels, n_boot=300, seed=1)
    assert out["nll"] == pytest.approx(log_loss(labels, probs, labels=range(4)), rel=1e-9)
    assert out["nll_lo"] < out["nll"] < out["nll_hi"]
    assert out["brier_lo"] < out["brier"] < out["brier_hi"]
