"""Prometheus per-slice bin counters: the ``calibserve_calibration_bin_*`` family with ``slice_key`` and
``slice_value`` labels, for configured keys only. ``slice_value`` is an admitted value (at most
``slice_max_values`` per model and key, ``service.db.slices``) or ``other``: client strings beyond that
bounded set never become label values (STYLE.md §19)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

LABELS = ["model", "version", "calibrator", "slice_key", "slice_value", "bin"]


class SliceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.bin_count = Counter(
            "calibserve_slice_calibration_bin_count", "Labelled predictions per slice and confidence bin.", LABELS,
            registry=registry,
        )
        self.bin_confidence = Counter(
            "calibserve_slice_calibration_bin_confidence_sum", "Sum of top-label confidence per slice and bin.",
            LABELS, registry=registry,
        )
        self.bin_correct = Counter(
            "calibserve_slice_calibration_bin_correct_sum", "Correct predictions per slice and bin.", LABELS,
            registry=registry,
        )
