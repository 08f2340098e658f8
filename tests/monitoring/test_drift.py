"""Drift rules: sample-size gating, the CI rule, NannyML's mean ± 3σ band, the accuracy gap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.monitoring import drift


def test_ci_rule_needs_n_min_and_a_reference() -> None:
    assert drift.ci_rule(49, 0.9, 0.01, n_min=50, tolerance=0.0).state == "insufficient_labels"
    assert drift.ci_rule(50, 0.9, None, n_min=50, tolerance=0.0).state == "no_reference"


def test_ci_rule_compares_the_lower_bound_with_the_reference_upper_bound_plus_tolerance() -> None:
    assert drift.ci_rule(500, 0.051, 0.04, n_min=50, tolerance=0.01).state == "drifting"
    assert drift.ci_rule(500, 0.05, 0.04, n_min=50, tolerance=0.01).state == "ok"  # equal is not above
    verdict = drift.ci_rule(500, 0.03, 0.04, n_min=50, tolerance=0.0, source="held_out_evaluation")
    assert verdict.to_dict()["threshold"] == 0.04 and verdict.to_dict()["rule"] == "ci"


def test_sigma_rule_is_mean_plus_three_sample_sigma_one_sided() -> None:
    ref = np.array([0.01, 0.02, 0.03])  # mean 0.02, sample σ 0.01 → upper 0.05
    assert drift.sigma_band(ref) == pytest.approx((0.02, 0.01, 0.05))
    assert drift.sigma_rule(300, 0.0501, ref, n_min=50).state == "drifting"
    assert drift.sigma_rule(300, 0.0499, ref, n_min=50).state == "ok"
    assert drift.sigma_rule(300, 0.0, ref, n_min=50).state == "ok"  # a better calibration is no alarm
    assert drift.sigma_rule(300, 0.9, ref[:2], n_min=50).state == "no_reference"
    assert drift.sigma_rule(10, 0.9, ref, n_min=50).state == "insufficient_labels"


def test_gap_and_se_match_a_row_level_computation() -> None:
    rng = np.random.default_rng(0)
    bins = rng.integers(200, 300, size=400)
    conf = (bins + 0.5) / 300  # one confidence per micro-bin: the bin-mean variance is then exact
    correct = (rng.random(400) < conf - 0.05).astype(float)
    count = np.bincount(bins, minlength=300).astype(float)
    gap, se = drift.gap_and_se(count, np.bincount(bins, conf, 300), np.bincount(bins, correct, 300))
    assert gap == pytest.approx(conf.mean() - correct.mean(), abs=1e-12)
    assert se == pytest.approx(math.sqrt(np.sum(conf * (1 - conf))) / 400, abs=1e-12)


def test_gap_rule_z_score_against_the_reference() -> None:
    verdict = drift.gap_rule(1000, 0.05, 0.01, (0.01, 0.0075), n_min=100)
    assert verdict.state == "drifting" and verdict.detail["z"] == pytest.approx(0.04 / 0.0125)
    assert drift.gap_rule(1000, 0.02, 0.01, (0.01, 0.0075), n_min=100).state == "ok"
    assert drift.gap_rule(1000, 0.02, 0.01, None, n_min=100).state == "no_reference"


def test_reference_from_evaluation_reads_fit_report_and_flat_payloads() -> None:
    nested = {"after": {"ece": 0.05, "ece_lo": 0.03, "ece_hi": 0.09, "accuracy": 0.96, "mean_confidence": 0.93,
                        "n": 108.0}, "before": {"ece": 0.15}}
    ref = drift.reference_from_evaluation(nested)
    assert ref is not None and (ref.ece, ref.ece_hi, ref.n) == (0.05, 0.09, 108.0)
    flat = drift.reference_from_evaluation({"ece": 0.02, "ece_ci": [0.01, 0.04]})
    assert flat is not None and (flat.ece_hi, flat.accuracy) == (0.04, None)
    assert drift.reference_from_evaluation(None) is None
    assert drift.reference_from_evaluation({"after": {"nll": 0.2}}) is None


def _fine_sums(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from service.calibration import streaming

    idx = streaming.fine_bin_index(conf)
    return (np.bincount(idx, minlength=300).astype(float), np.bincount(idx, conf, 300),
            np.bincount(idx, correct, 300))


def test_sequential_rule_alarms_on_overconfidence_and_not_on_calibrated_labels() -> None:
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.6, 1.0, 20_000)
    calm = drift.sequential_rule(*_fine_sums(conf, (rng.random(conf.size) < conf).astype(float)), alpha=0.05,
                                 tolerance=0.0)
    assert calm.state == "ok" and calm.rule == "cs"
    lo, hi = calm.detail["cs"]
    assert lo < 0 < hi and calm.detail["n"] == 20_000
    over = drift.sequential_rule(*_fine_sums(conf, (rng.random(conf.size) < conf - 0.03).astype(float)),
                                 alpha=0.05, tolerance=0.0)
    assert over.state == "drifting" and over.detail["cs"][1] < 0  # accuracy below confidence
    # the same overconfidence within a tolerance of 0.05 is not drift
    assert drift.sequential_rule(*_fine_sums(conf, (rng.random(conf.size) < conf - 0.03).astype(float)),
                                 alpha=0.05, tolerance=0.05).state == "ok"


def test_sequential_rule_without_labels() -> None:
    zero = np.zeros(300)
    assert drift.sequential_rule(zero, zero, zero, alpha=0.05, tolerance=0.0).state == "insufficient_labels"
