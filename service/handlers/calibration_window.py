"""The calibration query behind ``GET /v1/models/{m}/versions/{v}/calibration`` (transport-agnostic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.db.engine import read_session
from service.db.stats import Scope
from service.errors import InvalidInput, ModelNotFound
from service.handlers.services import Services
from service.monitoring.decision_report import decisions_report
from service.monitoring.reference import SOURCES, load_reference
from service.monitoring.report import RULES, WindowQuery, read_rows, window_report
from service.monitoring.series import series_report
from service.monitoring.slice_report import parse_slice, slice_report
from service.monitoring.state import fine_from_rows
from service.monitoring.windows import parse_bins, parse_choice, parse_step, resolve_window, split_window
from service.validation import is_number, parse_int

MAX_REFERENCE_WINDOWS = 50
VIEWS = ("summary", "classwise")


@dataclass(frozen=True)
class CalibrationParams:
    """Query-string parameters, unparsed (so every bad value becomes one 400 with a clear sentence)."""

    window: str | None = None
    start: str | None = None
    end: str | None = None
    calibrator: str | None = None
    bins: int | str | None = None
    step: str | None = None
    rule: str | None = None
    reference: str | None = None
    reference_windows: int | str | None = None
    view: str | None = None
    slice: str | None = None  # key:value
    by: str | None = None  # key


def resolve_version(services: Services, model: str, version: str) -> tuple[int, int]:
    """(version number, n_classes) of a version number or alias."""
    if model not in services.registry.models:
        raise ModelNotFound(f"model '{model}' is not served here")
    loaded = services.registry.resolve(model, version)
    return loaded.version, len(loaded.card.classes)


def resolve_calibrator(services: Services, model: str, version: int, calibrator: str | None) -> int | None:
    """'active' (default) → the serving calibrator version, 'all' → None, else a version number."""
    if calibrator in (None, "", "active"):
        loaded = services.registry.resolve(model, version)
        return loaded.serving.calibrator_version if loaded.serving else None
    if calibrator == "all":
        return None
    if not is_number(calibrator):
        raise InvalidInput("calibrator must be a calibrator version number, 'active' or 'all'")
    return parse_int(calibrator, "calibrator", low=1)


def calibration_report(services: Services, model: str, version: str, p: CalibrationParams) -> dict[str, Any]:
    s = services.settings
    v, n_classes = resolve_version(services, model, version)
    cv = resolve_calibrator(services, model, v, p.calibrator)
    k = s.drift_reference_windows if p.reference_windows is None else parse_int(
        p.reference_windows, "reference_windows", low=1, high=MAX_REFERENCE_WINDOWS)
    q = WindowQuery(Scope(model, v, cv), n_classes, parse_bins(p.bins, s.ece_bins), s.drift_min_labels,
                    s.drift_tolerance, parse_choice(p.rule or s.drift_rule, "rule", RULES),
                    parse_choice(p.reference, "reference", SOURCES), class_bins=s.ece_bins,
                    cs_alpha=s.drift_cs_alpha, classwise_view=parse_choice(p.view, "view", VIEWS) == "classwise")
    sliced = parse_slice(p.slice, p.by, tuple(s.slice_keys))
    now = datetime.now(UTC)
    begin, stop = resolve_window(p.window, p.start, p.end, default=s.default_window, now=now)
    edges = split_window(begin, stop, parse_step(p.step, s.bucket_seconds)) if p.step else None
    with read_session(services.sessions) as session:
        reference = load_reference(session, q.scope, length=stop - begin, k=k, now=now,
                                   bucket_seconds=s.bucket_seconds)
        rows = read_rows(session, q.scope, begin, stop)  # once, for the report and its decisions section
        out = window_report(session, q, begin, stop, reference, rows=rows)
        out["reference"].update(reference.describe(begin, q.n_bins))
        out["decisions"] = decisions_report(session, q.scope, begin, stop, false_alarm=s.coverage_alarm_level,
                                            delta=s.coverage_floor_delta, n_min=s.drift_min_labels,
                                            fine=fine_from_rows(rows))
        if edges is not None:
            step_reference = load_reference(session, q.scope, length=edges[1] - edges[0], k=k, now=now,
                                             bucket_seconds=s.bucket_seconds)
            out["series"] = series_report(session, q, edges, step_reference)
        if sliced is not None:
            out["slices"] = slice_report(session, q, begin, stop, *sliced)
    out.update(model=model, version=v)
    return out
