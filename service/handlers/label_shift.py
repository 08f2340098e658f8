"""The label-shift query behind ``GET /v1/models/{m}/versions/{v}/label_shift`` (transport-agnostic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.db.calibrators import activation_record
from service.db.stats import Scope, as_utc
from service.handlers.calibration_window import resolve_calibrator, resolve_version
from service.handlers.services import Services
from service.monitoring.label_shift import scope_label_shift
from service.monitoring.windows import resolve_window


def label_shift_report(services: Services, model: str, version: str, *, window: str | None = None,
                       start: str | None = None, end: str | None = None, calibrator: str | None = None
                       ) -> dict[str, Any]:
    """EM class prior of the window's newest unlabelled predictions vs the calibrator's first ones."""
    s = services.settings
    v, n_classes = resolve_version(services, model, version)
    cv = resolve_calibrator(services, model, v, calibrator)
    begin, stop = resolve_window(window, start, end, default=s.default_window, now=datetime.now(UTC))
    scope = Scope(model, v, cv)
    with services.sessions() as session:
        record = None if cv is None else activation_record(session=session, model=model, version=v,
                                                           calibrator_version=cv)
        since = None if record is None else as_utc(record[0] or record[1])
        out = scope_label_shift(session, scope, activated_at=since, start=begin, end=stop,
                                rows=s.label_shift_rows, tolerance=s.label_shift_tolerance)
    return {"model": model, "version": v, "calibrator_version": cv, "n_classes": n_classes,
            "window": {"start": begin.isoformat(), "end": stop.isoformat()}, **out}
