"""Prometheus metrics on a fresh registry: exact exported names and labels, and the zero-initialised bins."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from service.handlers.gauges import touch_bins
from service.monitoring.metrics import ServiceMetrics

BIN_COUNTERS = ("calibserve_calibration_bin_count_total", "calibserve_calibration_bin_confidence_sum_total",
                "calibserve_calibration_bin_correct_sum_total")


def test_per_bin_counters_have_the_documented_names_and_labels() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    labels = {"model": "digits", "version": "1", "calibrator": "2", "bin": "14"}
    metrics.bin_count.labels(*labels.values()).inc()
    metrics.bin_confidence.labels(*labels.values()).inc(0.97)
    metrics.bin_correct.labels(*labels.values()).inc(1.0)
    values = [metrics.registry.get_sample_value(name, labels) for name in BIN_COUNTERS]
    assert values == [1.0, 0.97, 1.0]


def test_gauges_and_counters_an_alert_rule_needs() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    labels = {"model": "digits", "version": "1", "calibrator": "2"}
    for gauge, value in ((metrics.drift, 1.0), (metrics.label_coverage, 0.03), (metrics.confidence_psi, 0.4),
                         (metrics.window_ece, 0.02), (metrics.accuracy_gap, 0.01)):
        gauge.labels(*labels.values()).set(value)
    metrics.log_dropped.inc(3)
    get = metrics.registry.get_sample_value
    assert get("calibserve_calibration_drift", labels) == 1.0
    assert get("calibserve_label_coverage_ratio", labels) == 0.03
    assert get("calibserve_confidence_psi", labels) == 0.4
    assert get("calibserve_prediction_log_dropped_total", {}) == 3.0


def test_touch_bins_creates_every_bin_series_at_zero() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    touch_bins(metrics, 15, ("digits", "1", "2"))
    for name in BIN_COUNTERS:
        for b in range(15):
            labels = {"model": "digits", "version": "1", "calibrator": "2", "bin": str(b)}
            assert metrics.registry.get_sample_value(name, labels) == 0.0
