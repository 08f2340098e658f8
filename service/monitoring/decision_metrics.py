"""Prometheus metrics of sets and decisions, on an injected registry.

Everything a rate or a ratio is computed from is a **counter** (so sums over workers and replicas are
exact; deploy/prometheus/rules/decisions.rules.yml turns them into coverage, set size, abstention and cost).
Labels are the server's own (model, version, calibrator); a client-chosen coverage target never becomes a
label — its sum does (``…_target_sum_total``), so "realised − target" is still exact across mixed targets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

LABELS = ["model", "version", "calibrator"]


class DecisionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry

        def counter(name: str, doc: str, extra: list[str] | None = None) -> Counter:
            return Counter(name, doc, [*LABELS, *(extra or [])], registry=r)

        self.conformal_labelled = counter("calibserve_conformal_labelled", "Labelled predictions served a set.")
        self.conformal_covered = counter("calibserve_conformal_covered", "Labelled sets that held the label.")
        self.conformal_target = counter("calibserve_conformal_target_sum", "Sum of the target coverages asked.")
        self.conformal_set_size = counter("calibserve_conformal_set_size_sum", "Sum of labelled set sizes.")
        self.served = counter("calibserve_decisions_served", "Rows served a decision, by outcome.", ["decision"])
        self.decision_labelled = counter("calibserve_decision_labelled", "Labelled predictions served a decision.")
        self.abstained = counter("calibserve_decision_abstained", "Labelled predictions that abstained.")
        self.accepted_correct = counter("calibserve_decision_accepted_correct",
                                        "Labelled, not abstained, top label correct.")
        self.costed = counter("calibserve_decision_costed", "Labelled Bayes actions (a cost matrix applied).")
        self.expected_cost = counter("calibserve_decision_expected_cost_sum", "Sum of expected costs.")
        self.realised_cost = counter("calibserve_decision_realised_cost_sum", "Sum of realised costs.")
        self.window_coverage = Gauge(
            "calibserve_conformal_window_coverage", "Realised coverage over the default window (lowest target).",
            LABELS, registry=r, multiprocess_mode="mostrecent",
        )
        self.coverage_alarm = Gauge(
            "calibserve_conformal_coverage_alarm",
            "1 when the one-sided coverage test fires over the default window, else 0.",
            LABELS, registry=r, multiprocess_mode="mostrecent",
        )

    def observe_served(self, model: str, version: str, calibrator: str, *, abstained: int, acted: int) -> None:
        """At predict time: rows of one request that abstained / got a decision (label or Bayes action)."""
        labels = (model, version, calibrator)
        if abstained:
            self.served.labels(*labels, "abstain").inc(abstained)
        if acted:
            self.served.labels(*labels, "act").inc(acted)

    def observe_feedback(self, conformal_rows: Iterable[Mapping[str, Any]],
                         decision_rows: Iterable[Mapping[str, Any]]) -> None:
        """After the feedback transaction commits: the same rows that were added to the database."""
        for row in conformal_rows:
            labels = (row["model"], str(row["version"]), str(row["calibrator_version"]))
            self.conformal_labelled.labels(*labels).inc(row["count"])
            self.conformal_covered.labels(*labels).inc(row["covered_sum"])
            self.conformal_target.labels(*labels).inc(row["count"] * row["coverage_ppm"] / 1_000_000)
            self.conformal_set_size.labels(*labels).inc(row["set_size_sum"])
        for row in decision_rows:
            labels = (row["model"], str(row["version"]), str(row["calibrator_version"]))
            self.decision_labelled.labels(*labels).inc(row["count"])
            self.abstained.labels(*labels).inc(row["abstained_sum"])
            self.accepted_correct.labels(*labels).inc(row["accepted_correct_sum"])
            self.costed.labels(*labels).inc(row["costed_count"])
            self.expected_cost.labels(*labels).inc(row["expected_cost_sum"])
            self.realised_cost.labels(*labels).inc(row["realised_cost_sum"])

    def set_window(self, model: str, version: int, calibrator: int, section: list[dict[str, Any]]) -> None:
        """Gauges from ``decision_window.conformal_section``: the alarm fires if any target's test fires."""
        if not section:
            return
        labels = (model, str(version), str(calibrator))
        lowest = min(section, key=lambda e: e["target_coverage"])
        if lowest["realised_coverage"] is not None:
            self.window_coverage.labels(*labels).set(lowest["realised_coverage"])
        self.coverage_alarm.labels(*labels).set(float(any(e["alarm"] for e in section)))
