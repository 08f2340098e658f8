"""Calibration windows, calibrator history and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from service.api.deps import ServicesDep
from service.api.http import JSONBytes
from service.db import calibrators as calibrator_rows
from service.errors import InvalidInput, ModelNotFound
from service.handlers.services import Services
from service.monitoring.report import window_metrics
from service.monitoring.windows import parse_duration, resolve_window, split_window

router = APIRouter(tags=["monitoring"])


def _version(services: Services, model: str, version: str) -> tuple[int, int]:
    """(version number, n_classes) for a version or alias; works for versions no longer loaded too."""
    entry = services.registry.models.get(model)
    if entry is None:
        raise ModelNotFound(f"model '{model}' is not served here")
    loaded = services.registry.resolve(model, version)
    return loaded.version, len(loaded.card.classes)


def _calibrator(services: Services, model: str, version: int, calibrator: str | None) -> int | None:
    if calibrator in (None, "", "active"):
        loaded = services.registry.resolve(model, version)
        return loaded.serving.calibrator_version if loaded.serving else None
    if calibrator == "all":
        return None
    if not str(calibrator).isdigit():
        raise InvalidInput("calibrator must be a calibrator version number, 'active' or 'all'")
    return int(str(calibrator))


@router.get("/v1/models/{model}/versions/{version}/calibration")
async def calibration(
    model: str, version: str, services: ServicesDep, window: str | None = None, start: str | None = None,
    end: str | None = None, calibrator: str | None = None, bins: int | None = None, step: str | None = None,
) -> Response:
    """Window calibration metrics (ECE+CI, MCE, AdaECE≈, classwise, Brier, NLL, coverage, drift verdict)."""
    s = services.settings
    v, n_classes = _version(services, model, version)
    cv = _calibrator(services, model, v, calibrator)
    n_bins = bins or s.ece_bins
    if n_bins <= 0 or 300 % n_bins:
        raise InvalidInput("bins must divide 300 (e.g. 5, 10, 15, 20, 30, 50, 100)")
    begin, stop = resolve_window(window, start, end, default=s.default_window)

    def compute() -> dict[str, Any]:
        with services.sessions() as session:
            kw: dict[str, Any] = dict(model=model, version=v, calibrator_version=cv, n_classes=n_classes,
                                      n_bins=n_bins, n_min=s.drift_min_labels, tolerance=s.drift_tolerance)
            out = window_metrics(session, start=begin, end=stop, **kw)
            if step:
                edges = split_window(begin, stop, parse_duration(step))
                out["series"] = [
                    {k: p[k] for k in ("window", "labelled", "predicted", "label_coverage", "ece", "ece_ci",
                                       "accuracy", "mean_confidence", "drift")}
                    for p in (window_metrics(session, start=a, end=b, n_boot=50, **kw)
                              for a, b in zip(edges[:-1], edges[1:], strict=True))
                ]
            return out

    out = await run_in_threadpool(compute)
    out.update(model=model, version=v)
    return JSONBytes(out)


@router.get("/v1/models/{model}/versions/{version}/calibrators")
async def calibrator_history(model: str, version: str, services: ServicesDep) -> Response:
    """Every calibrator version of a model version, with its state, method, fit window and evaluation."""
    v, _ = _version(services, model, version)
    with services.sessions() as session:
        rows = calibrator_rows.list_calibrators(session=session, model=model, version=v)
        return JSONBytes({"model": model, "version": v, "calibrators": [calibrator_public(r) for r in rows]})


def calibrator_public(r: Any) -> dict[str, Any]:
    return {
        "calibrator_version": r.calibrator_version, "method": r.method, "params": r.params, "state": r.state,
        "source": r.source, "fit_window": r.fit_window, "n_fit": r.n_fit, "evaluation": r.evaluation,
        "created_at": r.created_at.isoformat(), "created_by": r.created_by,
        "activated_at": r.activated_at.isoformat() if r.activated_at else None,
        "previous_active": r.previous_active,
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition (aggregated across workers in multiprocess mode)."""
    services.metrics.log_queue_depth.set(services.writer.depth())
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)
