"""Prometheus metrics on an injected registry (prometheus/client_python style).

Under several uvicorn workers set ``PROMETHEUS_MULTIPROC_DIR``: values then live in per-process files and
``render`` aggregates them (``MultiProcessCollector``). Calibration state is exported as per-bin
**counters**, so ECE is a PromQL expression that adds correctly across workers and replicas.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as mp

from service.monitoring.decision_metrics import DecisionMetrics
from service.monitoring.slice_metrics import SliceMetrics

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "calibserve_requests_total", "Requests by endpoint, model, version and status code.",
            ["endpoint", "model", "version", "code"], registry=r,
        )
        self.latency = Histogram(
            "calibserve_request_duration_seconds", "Request latency by endpoint, model and version.",
            ["endpoint", "model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.predictions = Counter(
            "calibserve_predictions_total", "Predicted rows by model, version and calibrator version.",
            ["model", "version", "calibrator"], registry=r,
        )
        self.log_queue_depth = Gauge(
            "calibserve_prediction_log_queue_depth", "Rows in the prediction-log spool, not yet in the database.",
            registry=r, multiprocess_mode="livesum",
        )
        self.log_spool_bytes = Gauge(
            "calibserve_prediction_log_spool_bytes", "Bytes in the prediction-log spool.", registry=r,
            multiprocess_mode="livesum",
        )
        self.log_refused = Counter(
            "calibserve_prediction_log_refused_total",
            "Prediction rows refused (503) because the spool was at its disk bound; nothing was served.",
            registry=r,
        )
        self.log_written = Counter(
            "calibserve_prediction_log_written_total", "Prediction rows written to the database.", registry=r
        )
        self.log_dropped = Counter(
            "calibserve_prediction_log_dropped_total",
            "Spooled prediction rows the database refused for good (kept in the spool's dead table).", registry=r,
        )
        self.feedback = Counter(
            "calibserve_feedback_items_total", "Feedback items by outcome.", ["model", "outcome"], registry=r
        )
        labels = ["model", "version", "calibrator", "bin"]
        self.bin_count = Counter(
            "calibserve_calibration_bin_count", "Labelled predictions per confidence bin.", labels, registry=r
        )
        self.bin_confidence = Counter(
            "calibserve_calibration_bin_confidence_sum", "Sum of top-label confidence per bin.", labels,
            registry=r,
        )
        self.bin_correct = Counter(
            "calibserve_calibration_bin_correct_sum", "Correct predictions per bin.", labels, registry=r
        )
        gauge_labels = ["model", "version", "calibrator"]
        self.window_ece = Gauge(
            "calibserve_calibration_window_ece", "ECE over the default monitoring window.", gauge_labels,
            registry=r, multiprocess_mode="mostrecent",
        )
        self.label_coverage = Gauge(
            "calibserve_label_coverage_ratio", "Labelled / predicted over the default window.", gauge_labels,
            registry=r, multiprocess_mode="mostrecent",
        )
        self.drift = Gauge(
            "calibserve_calibration_drift", "1 when the window's calibration is drifting, else 0.",
            gauge_labels, registry=r, multiprocess_mode="mostrecent",
        )
        self.window_labelled = Gauge(
            "calibserve_calibration_window_labelled", "Labelled predictions in the default window.",
            gauge_labels, registry=r, multiprocess_mode="mostrecent",
        )
        self.confidence_psi = Gauge(
            "calibserve_confidence_psi", "PSI of the window's confidence distribution vs the reference period.",
            gauge_labels, registry=r, multiprocess_mode="mostrecent",
        )
        self.confidence_ks = Gauge(
            "calibserve_confidence_ks", "KS statistic of the window's confidence distribution vs the reference.",
            gauge_labels, registry=r, multiprocess_mode="mostrecent",
        )
        self.accuracy_gap = Gauge(
            "calibserve_expected_accuracy_gap",
            "Expected accuracy (mean calibrated confidence, all predictions) minus realised accuracy.",
            gauge_labels, registry=r, multiprocess_mode="mostrecent",
        )
        self.drift_cs = Gauge(
            "calibserve_calibration_drift_cs",
            "1 when the confidence sequence for accuracy − confidence since activation excludes the null.",
            gauge_labels, registry=r, multiprocess_mode="mostrecent",
        )
        self.label_shift_tv = Gauge(
            "calibserve_label_shift_tv",
            "Total variation between the EM class prior of recent unlabelled predictions and the reference prior.",
            gauge_labels, registry=r, multiprocess_mode="mostrecent",
        )
        self.label_shift = Gauge(
            "calibserve_label_shift", "1 when the class prior has shifted beyond the tolerance, else 0.",
            gauge_labels, registry=r, multiprocess_mode="mostrecent",
        )
        # class indices, not names: bounded by the model's K and never client-chosen (STYLE.md §19)
        self.class_prior = Gauge(
            "calibserve_class_prior_estimate", "EM estimate of the class prior of recent unlabelled predictions.",
            [*gauge_labels, "class_index"], registry=r, multiprocess_mode="mostrecent",
        )
        self.decisions = DecisionMetrics(r)  # conformal sets and decisions (their own module)
        self.slices = SliceMetrics(r)  # per-slice bins, configured keys only (monitoring.slice_metrics)
        # waits that are not a request's own work: for the event loop (busy with other requests) and, on SQLite,
        # for the one writer's turn; telling them from slow work is what docs/reliability.md (stop 21) needed
        self.event_loop_lag = Histogram(
            "calibserve_event_loop_lag_seconds",
            "How late the event loop ran a timer that was due: what any request waits for its next step.",
            buckets=WAIT_BUCKETS, registry=r,
        )
        self.write_lock_wait = Histogram(
            "calibserve_sqlite_write_lock_wait_seconds",
            "How long an SQLite writer of this process waited for its turn at the write lock.",
            buckets=WAIT_BUCKETS, registry=r,
        )
        self.monitor_refresh_cpu = Gauge(
            "calibserve_monitor_refresh_cpu_seconds",
            "CPU seconds the last refresh of the window gauges took; the next waits at least 20 times as long.",
            registry=r, multiprocess_mode="max",
        )
        self.admin_auth_failures = Counter(
            "calibserve_admin_auth_failures_total", "Rejected admin requests.", ["reason"], registry=r
        )

    def render(self) -> tuple[bytes, str]:
        if multiprocess_enabled():
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
