"""The decisions section of the window JSON: coverage CI against scipy, the reference floor and the alarm,
abstention and cost figures from hand-computed sums, and risk–coverage / AUARC from fine bins against the
row-level functions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from service.calibration.coverage_bounds import conditional_coverage_floor
from service.calibration.selective import auarc
from service.db.decision_stats import ConformalSums, DecisionSums
from service.monitoring.decision_window import conformal_section, decision_section, selective_section

LEVELS = {"false_alarm": 0.01, "delta": 0.01, "n_min": 100}


def test_conformal_section_on_target_and_below() -> None:
    sums = [ConformalSums(1, 900_000, 1000.0, 902.0, 1800.0), ConformalSums(1, 800_000, 1000.0, 700.0, 1200.0)]
    ok, low = conformal_section(sums, {1: ([500], False)}, **LEVELS)
    ref = binomtest(902, 1000).proportion_ci(method="exact")
    assert ok["realised_coverage"] == 0.902 and ok["coverage_ci"] == pytest.approx([ref.low, ref.high])
    assert ok["mean_set_size"] == 1.8 and ok["reference_coverage"] == pytest.approx(
        conditional_coverage_floor(500, 0.9, 0.01)) and not ok["alarm"]
    assert ok["reference_coverage"] < 0.9  # held to its calibration-set floor, not the nominal target
    assert low["target_coverage"] == 0.8 and low["alarm"] and low["shortfall_p_value"] < 1e-4


def test_conformal_section_mondrian_and_too_few_labels() -> None:
    few = ConformalSums(2, 900_000, 50.0, 30.0, 100.0)
    (entry,) = conformal_section([few], {2: ([100, 100, 100], True)}, **LEVELS)
    assert not entry["alarm"] and entry["shortfall_p_value"] < 0.01  # significant, but below n_min labels


def test_decision_section() -> None:
    (entry,) = decision_section([DecisionSums(3, 600_000, 10.0, 2.0, 6.0, 8.0, 4.0, 6.0, 10.0)])
    assert entry["cost_matrix_version"] == 3 and entry["min_confidence"] == 0.6
    assert entry["abstention_rate"] == 0.2 and entry["accepted_accuracy"] == 0.75
    assert (entry["expected_cost"], entry["realised_cost"], entry["cost_gap"]) == (0.5, 0.75, 0.25)
    # gap² mean 1.25 → sample variance (1.25 − 0.0625)·8/7; CI = gap ± 1.96·sd/√8
    half = 1.959963984540054 * np.sqrt((1.25 - 0.0625) * 8 / 7 / 8)
    assert entry["cost_gap_ci"] == pytest.approx([0.25 - half, 0.25 + half])
    (plain,) = decision_section([DecisionSums(0, 500_000, 4.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0)])
    assert plain["cost_matrix_version"] is None and plain["accepted_accuracy"] is None and "cost_gap" not in plain


def test_selective_section_matches_rows() -> None:
    rng = np.random.default_rng(0)
    bins = rng.choice(300, size=200, replace=False)  # one row per bin: the binned curve equals the row one
    confidence = (bins + 0.5) / 300
    correct = (rng.random(200) < confidence).astype(float)
    count, hits = np.zeros(300), np.zeros(300)
    np.add.at(count, bins, 1.0)
    np.add.at(hits, bins, correct)
    section = selective_section(count, hits)
    assert section is not None and section["auarc"] == pytest.approx(auarc(confidence, correct))
    point = next(p for p in section["risk_coverage"] if p["min_confidence"] == 0.8)
    keep = confidence > 0.8
    assert point["coverage"] == pytest.approx(keep.mean()) and point["risk"] == pytest.approx(1 - correct[keep].mean())
    assert selective_section(np.zeros(300), np.zeros(300)) is None
