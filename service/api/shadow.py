"""Shadow calibrators: put in shadow / take out (admin, Bearer token), list and compare (read-only)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from service.api.deps import AdminDep, ServicesDep, require_admin
from service.api.http import JSONBytes, read_body
from service.api.openapi import BODY, errors, json_body
from service.api.shadow_schemas import ShadowComparison, ShadowList, ShadowRemoved, ShadowResult
from service.handlers.shadow import ShadowOptions, parse_shadow_options
from service.validation import parse_int

SHADOW = "/models/{model}/versions/{version}/calibrators/{calibrator_version}/shadow"

admin_router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                         responses=errors(400, 401, 403, 404, 503))
router = APIRouter(tags=["monitoring"])


@admin_router.put(SHADOW, responses={200: {"model": ShadowResult, "description": "policy or margin changed"},
                                     201: {"model": ShadowResult, "description": "now in shadow"},
                                     **errors(*BODY, 409)},
                  openapi_extra=json_body(ShadowOptions.model_json_schema(), required=False))
async def put_shadow(model: str, version: str, calibrator_version: str, request: Request, services: ServicesDep,
                     actor: AdminDep) -> Response:
    """Put a stored calibrator in shadow: scored on every new label beside the active one (409 past the limit)."""
    number = parse_int(calibrator_version, "calibrator_version", low=1)
    options = parse_shadow_options(await read_body(request, services.settings.max_body_bytes))
    out, created = await asyncio.to_thread(lambda: services.shadows.put(
        model=model, version=version, calibrator_version=number, options=options, actor=actor))
    return JSONBytes(out, status_code=201 if created else 200)


@admin_router.delete(SHADOW, responses={200: {"model": ShadowRemoved}})
async def delete_shadow(model: str, version: str, calibrator_version: str, services: ServicesDep,
                        actor: AdminDep) -> Response:
    """Take a calibrator out of shadow (its past statistics stay readable through compare)."""
    number = parse_int(calibrator_version, "calibrator_version", low=1)
    return JSONBytes(await asyncio.to_thread(lambda: services.shadows.remove(
        model=model, version=version, calibrator_version=number, actor=actor)))


@router.get("/v1/models/{model}/versions/{version}/shadows",
            responses={200: {"model": ShadowList}, **errors(400, 404, 503)})
async def list_shadows(model: str, version: str, services: ServicesDep) -> Response:
    """The version's shadow calibrators, each with its promotion evidence against the active calibrator."""
    return JSONBytes(await asyncio.to_thread(lambda: services.shadows.list(model=model, version=version)))


@router.get("/v1/models/{model}/versions/{version}/calibrators/{calibrator_version}/compare",
            responses={200: {"model": ShadowComparison}, **errors(400, 404, 503)})
async def compare(model: str, version: str, calibrator_version: str, services: ServicesDep,
                  window: str | None = None, start: str | None = None, end: str | None = None,
                  bins: str | None = None, against: str | None = None) -> Response:
    """Paired NLL, Brier and ECE differences (active − shadow) on the same labelled rows, with CIs."""
    number = parse_int(calibrator_version, "calibrator_version", low=1)
    return JSONBytes(await asyncio.to_thread(lambda: services.shadows.compare(
        model=model, version=version, calibrator_version=number, window=window, start=start, end=end, bins=bins,
        against=against)))
