"""fit_conformal: the stored calibrator uses every held-out row, the evaluation is on rows its inner fit did
not see, and the evaluated coverage is within its Clopper–Pearson interval of the target."""

from __future__ import annotations

import json

import numpy as np

from service.calibration.conformal import conformal_from_dict
from service.calibration.conformal_fitting import evaluate_sets, fit_conformal
from tests.calibration.factories import sample_labels, softmax


def held_out(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(size=(n, 4)) * 2)
    return probs, sample_labels(probs, rng)


def test_report_fits_on_all_rows_and_evaluates_on_held_out_ones() -> None:
    probs, labels = held_out(2000)
    report = fit_conformal(probs, labels, score="lac", seed=3)
    assert report.conformal.n_fit == 2000
    assert report.evaluation is not None and report.evaluation["n_fit"] + report.evaluation["n_eval"] == 2000
    for target, figures in report.evaluation["sets"].items():
        lo, hi = figures["coverage_ci"]
        assert lo - 0.01 <= float(target) <= hi + 0.01  # within sampling error (+ the 1/(n+1) slack)
        assert figures["mean_set_size"] >= 1.0 - figures["empty_rate"]
    payload = json.loads(json.dumps(report.to_dict()))
    assert conformal_from_dict(payload).predict_set(probs[:5], 0.9).shape == (5, 4)


def test_too_few_rows_skip_the_evaluation() -> None:
    probs, labels = held_out(30)
    report = fit_conformal(probs, labels, score="aps", mondrian=True)
    assert report.evaluation is None and report.conformal.n_fit == 30


def test_evaluate_sets_hand_computed() -> None:
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1], [0.2, 0.8]])
    conformal = fit_conformal(probs, np.array([0, 1, 0, 0]), score="lac").conformal
    # scores 0.3, 0.4, 0.1, 0.8; coverage 0.5 → k = ⌈2.5⌉ = 3 → q̂ = 0.4: p ≥ 0.6 is in the set
    figures = evaluate_sets(conformal, probs, np.array([0, 1, 0, 0]), (0.5,))["0.5"]
    assert figures["coverage"] == 0.75 and figures["mean_set_size"] == 1.0 and figures["empty_rate"] == 0.0
