"""Decision metrics on a fresh registry: counters carry the feedback rows' sums, the target is summed (never a
label), the window gauges follow the conformal section, and the exposition passes ``promtool check metrics``."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from service.monitoring.decision_metrics import DecisionMetrics

KEY = {"model": "digits", "version": 1, "calibrator_version": 2, "bucket": datetime(2026, 12, 1, tzinfo=UTC)}
LABELS = {"model": "digits", "version": "1", "calibrator": "2"}


def test_feedback_rows_become_counters() -> None:
    registry = CollectorRegistry()
    metrics = DecisionMetrics(registry)
    metrics.observe_feedback(
        [{**KEY, "conformal_version": 1, "coverage_ppm": 900_000, "count": 10.0, "covered_sum": 9.0,
          "set_size_sum": 14.0},
         {**KEY, "conformal_version": 1, "coverage_ppm": 950_000, "count": 2.0, "covered_sum": 2.0,
          "set_size_sum": 5.0}],
        [{**KEY, "cost_matrix_version": 1, "min_confidence_ppm": 0, "count": 4.0, "abstained_sum": 1.0,
          "accepted_correct_sum": 2.0, "costed_count": 3.0, "expected_cost_sum": 1.5, "realised_cost_sum": 2.0,
          "cost_gap_sq_sum": 0.5}],
    )
    metrics.observe_served("digits", "1", "2", abstained=3, acted=7)
    value = registry.get_sample_value
    assert value("calibserve_conformal_labelled_total", LABELS) == 12.0
    assert value("calibserve_conformal_covered_total", LABELS) == 11.0
    assert value("calibserve_conformal_target_sum_total", LABELS) == pytest.approx(10 * 0.9 + 2 * 0.95)
    assert value("calibserve_conformal_set_size_sum_total", LABELS) == 19.0
    assert value("calibserve_decision_realised_cost_sum_total", LABELS) == 2.0
    assert value("calibserve_decision_costed_total", LABELS) == 3.0
    assert value("calibserve_decisions_served_total", {**LABELS, "decision": "abstain"}) == 3.0
    assert value("calibserve_decisions_served_total", {**LABELS, "decision": "act"}) == 7.0

    metrics.set_window("digits", 1, 2, [
        {"target_coverage": 0.95, "realised_coverage": 0.96, "alarm": False},
        {"target_coverage": 0.9, "realised_coverage": 0.8, "alarm": True},
    ])
    assert value("calibserve_conformal_window_coverage", LABELS) == 0.8
    assert value("calibserve_conformal_coverage_alarm", LABELS) == 1.0

    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is required: run scripts/install-system-packages.sh (Debian package 'prometheus')")
    checked = subprocess.run([exe, "check", "metrics"], input=generate_latest(registry).decode(),
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
