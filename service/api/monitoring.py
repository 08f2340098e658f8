"""Calibration windows, calibrator history and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from service.api.deps import ServicesDep
from service.api.http import JSONBytes
from service.api.openapi import errors
from service.api.schemas import CalibratorHistory
from service.api.window_schemas import CalibrationWindow, LabelShift
from service.handlers.calibration_window import CalibrationParams, calibration_report, resolve_version
from service.handlers.label_shift import label_shift_report

router = APIRouter(tags=["monitoring"])


@router.get("/v1/models/{model}/versions/{version}/calibration",
            responses={200: {"model": CalibrationWindow}, **errors(400, 404, 503)})
async def calibration(
    model: str, version: str, services: ServicesDep, window: str | None = None, start: str | None = None,
    end: str | None = None, calibrator: str | None = None, bins: str | None = None, step: str | None = None,
    rule: str | None = None, reference: str | None = None, reference_windows: str | None = None,
    view: str | None = None,
    slice: Annotated[str | None, Query(description="key:value — add the metrics of one slice (a configured "
                                       "tag key, an admitted value or 'other')")] = None,
    by: Annotated[str | None, Query(description="a configured slice key — add the metrics of each of its "
                                    "slices side by side")] = None,
) -> Response:
    """Window calibration metrics (ECE+CI, MCE, AdaECE≈, classwise, Brier, NLL, coverage, drift verdicts);
    ``view=classwise`` adds one reliability diagram per class; ``slice``/``by`` add per-slice metrics."""
    params = CalibrationParams(window, start, end, calibrator, bins, step, rule, reference, reference_windows, view,
                               slice, by)
    return JSONBytes(await asyncio.to_thread(calibration_report, services, model, version, params))


@router.get("/v1/models/{model}/versions/{version}/calibrators",
            responses={200: {"model": CalibratorHistory}, **errors(400, 404, 503)})
async def calibrator_history(model: str, version: str, services: ServicesDep) -> Response:
    """Every calibrator version of a model version, with its state, method, fit window and evaluation."""
    v, _ = resolve_version(services, model, version)
    rows = await asyncio.to_thread(lambda: services.lifecycle.history(model=model, version=v))
    return JSONBytes({"model": model, "version": v, "calibrators": rows})


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition (aggregated across workers in multiprocess mode)."""
    services.metrics.log_queue_depth.set(services.writer.depth())
    services.metrics.log_spool_bytes.set(services.writer.spool_bytes())
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/v1/models/{model}/versions/{version}/label_shift",
            responses={200: {"model": LabelShift}, **errors(400, 404, 503)})
async def label_shift(
    model: str, version: str, services: ServicesDep, window: str | None = None, start: str | None = None,
    end: str | None = None, calibrator: str | None = None,
) -> Response:
    """EM estimate of the class prior of recent unlabelled predictions vs the reference prior, with CI and alarm."""
    return JSONBytes(await asyncio.to_thread(label_shift_report, services, model, version, window=window,
                                             start=start, end=end, calibrator=calibrator))
