"""Refresh the window gauges (ECE, label coverage, drift) for every served version's active calibrator."""

from __future__ import annotations

from service.handlers.services import Services
from service.monitoring.report import window_metrics
from service.monitoring.windows import resolve_window


def refresh_gauges(services: Services) -> None:
    s = services.settings
    start, end = resolve_window(None, None, None, default=s.default_window)
    with services.sessions() as session:
        for entry in list(services.registry.models.values()):
            for loaded in list(entry.versions.values()):
                if loaded.serving is None:
                    continue
                cv = loaded.serving.calibrator_version
                out = window_metrics(session, model=loaded.name, version=loaded.version, calibrator_version=cv,
                                     start=start, end=end, n_classes=len(loaded.card.classes), n_bins=s.ece_bins,
                                     n_min=s.drift_min_labels, tolerance=s.drift_tolerance, n_boot=100)
                labels = (loaded.name, str(loaded.version), str(cv))
                if out["ece"] is not None:
                    services.metrics.window_ece.labels(*labels).set(out["ece"])
                if out["label_coverage"] is not None:
                    services.metrics.label_coverage.labels(*labels).set(out["label_coverage"])
                services.metrics.drift.labels(*labels).set(1.0 if out["drift"]["state"] == "drifting" else 0.0)
