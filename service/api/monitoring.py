"""Calibration windows, calibrator history and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from service.api.deps import ServicesDep
from service.api.http import JSONBytes
from service.handlers.calibration_window import CalibrationParams, calibration_report, resolve_version

router = APIRouter(tags=["monitoring"])


@router.get("/v1/models/{model}/versions/{version}/calibration")
async def calibration(
    model: str, version: str, services: ServicesDep, window: str | None = None, start: str | None = None,
    end: str | None = None, calibrator: str | None = None, bins: int | None = None, step: str | None = None,
    rule: str | None = None, reference: str | None = None, reference_windows: int | None = None,
) -> Response:
    """Window calibration metrics (ECE+CI, MCE, AdaECE≈, classwise, Brier, NLL, coverage, drift verdicts)."""
    params = CalibrationParams(window, start, end, calibrator, bins, step, rule, reference, reference_windows)
    return JSONBytes(await run_in_threadpool(calibration_report, services, model, version, params))


@router.get("/v1/models/{model}/versions/{version}/calibrators")
async def calibrator_history(model: str, version: str, services: ServicesDep) -> Response:
    """Every calibrator version of a model version, with its state, method, fit window and evaluation."""
    v, _ = resolve_version(services, model, version)
    rows = await run_in_threadpool(lambda: services.lifecycle.history(model=model, version=v))
    return JSONBytes({"model": model, "version": v, "calibrators": rows})


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition (aggregated across workers in multiprocess mode)."""
    services.metrics.log_queue_depth.set(services.writer.depth())
    services.metrics.log_spool_bytes.set(services.writer.spool_bytes())
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)
