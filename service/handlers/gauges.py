"""Refresh the window gauges (ECE, coverage, drift, confidence shift, the anytime-valid gap alarm, the
label-shift estimate) for every served version.

Every replica computes the same numbers from the shared database, so ``mostrecent`` gauges agree across
workers and ``max by`` in PromQL de-duplicates replicas.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from service.db.engine import read_session
from service.db.stats import Scope
from service.handlers.services import Services
from service.monitoring.decision_report import decisions_report
from service.monitoring.label_shift import scope_label_shift
from service.monitoring.metrics import ServiceMetrics
from service.monitoring.reference import load_reference
from service.monitoring.report import WindowQuery, window_report
from service.monitoring.windows import resolve_window

MAX_DUTY = 0.05  # of one core: the refreshes share the serving process's CPU and GIL with every request


def next_gauge_refresh(now: float, interval: float, cpu_seconds: float) -> float:
    """When the next refresh is due: ``interval`` after this one, or later if this one took more than
    ``MAX_DUTY`` of that in CPU, so that monitoring never crowds out serving (a bootstrap over many versions,
    or a slow label-shift fit, stretches the period instead of taking a core)."""
    return now + max(interval, cpu_seconds / MAX_DUTY)


def refresh_gauges(services: Services) -> None:
    s, m = services.settings, services.metrics
    now = datetime.now(UTC)
    start, end = resolve_window(None, None, None, default=s.default_window, now=now)
    with read_session(services.sessions) as session:
        for entry in list(services.registry.models.values()):
            for loaded in list(entry.versions.values()):
                if loaded.serving is None:
                    continue
                cv = loaded.serving.calibrator_version
                labels = (loaded.name, str(loaded.version), str(cv))
                touch_bins(m, s.ece_bins, labels)
                q = WindowQuery(Scope(loaded.name, loaded.version, cv), len(loaded.card.classes), s.ece_bins,
                                s.drift_min_labels, s.drift_tolerance, rule=s.drift_rule, class_bins=s.ece_bins,
                                cs_alpha=s.drift_cs_alpha)
                reference = load_reference(session, q.scope, length=end - start, k=s.drift_reference_windows,
                                           now=now, bucket_seconds=s.bucket_seconds)
                out = window_report(session, q, start, end, reference)  # same bootstrap as the API's verdict
                _set(m.window_ece, labels, out["ece"])
                _set(m.label_coverage, labels, out["label_coverage"])
                _set(m.window_labelled, labels, out["labelled"])
                _set(m.confidence_psi, labels, out["confidence_shift"]["psi"])
                _set(m.confidence_ks, labels, out["confidence_shift"]["ks"])
                _set(m.accuracy_gap, labels, out["accuracy_gap"]["gap"] if out["labelled"] else None)
                m.drift.labels(*labels).set(1.0 if out["drift"]["state"] == "drifting" else 0.0)
                m.drift_cs.labels(*labels).set(1.0 if out["drift_checks"]["cs"]["state"] == "drifting" else 0.0)
                shift = scope_label_shift(session, q.scope, activated_at=reference.activated_at, start=start,
                                          end=end, rows=s.label_shift_rows, tolerance=s.label_shift_tolerance)
                set_label_shift(m, labels, shift)
                decided = decisions_report(session, q.scope, start, end, false_alarm=s.coverage_alarm_level,
                                           delta=s.coverage_floor_delta, n_min=s.drift_min_labels)
                m.decisions.set_window(loaded.name, loaded.version, cv, decided["conformal"])


def set_label_shift(metrics: ServiceMetrics, labels: tuple[str, ...], shift: dict[str, Any]) -> None:
    """Prior estimate per class index, TV distance and the alarm; nothing while there is no estimate."""
    if shift.get("prior") is None:
        return
    for k, value in enumerate(shift["prior"]):
        metrics.class_prior.labels(*labels, str(k)).set(value)
    metrics.label_shift_tv.labels(*labels).set(shift["tv"])
    metrics.label_shift.labels(*labels).set(1.0 if shift["state"] == "shifted" else 0.0)


def touch_bins(metrics: ServiceMetrics, n_bins: int, labels: tuple[str, ...]) -> None:
    """Create every per-bin counter series at 0 before its first label: PromQL ``increase()`` cannot see
    the first increment of a series that appears with a value > 0 (Prometheus 2.x has no created-timestamp
    ingestion), so pre-created series make windowed ECE recording rules exact from the first label on."""
    for b in range(n_bins):
        for counter in (metrics.bin_count, metrics.bin_confidence, metrics.bin_correct):
            counter.labels(*labels, str(b))


def _set(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """Unknown values are left out rather than exported as 0 (an absent series is not 'perfect')."""
    if value is not None:
        gauge.labels(*labels).set(value)
