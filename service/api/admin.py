"""Admin API (Bearer token, declared once on the router): re-fit, activate, roll back, aliases, cost matrices,
audit."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from service.api.deps import AdminDep, ServicesDep, require_admin
from service.api.http import JSONBytes, read_body
from service.api.openapi import BODY, errors, json_body
from service.api.schemas import (
    ActivationResult,
    AliasBody,
    AliasResult,
    AuditLog,
    CostMatrices,
    CostMatrixPublic,
    RefitResult,
)
from service.errors import InvalidInput
from service.handlers.json_body import json_object
from service.handlers.refit_options import RefitOptions, parse_options
from service.validation import parse_int

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses=errors(400, 401, 403, 404, 503))


@router.post("/models/{model}/versions/{version}/calibrators",
             responses={200: {"model": RefitResult, "description": "dry run"},
                        201: {"model": RefitResult, "description": "stored (and maybe activated)"},
                        **errors(*BODY, 409, 422)},
             openapi_extra=json_body(RefitOptions.model_json_schema(), required=False))
async def refit(model: str, version: str, request: Request, services: ServicesDep, actor: AdminDep) -> Response:
    """Re-fit a calibrator from stored feedback, evaluate on held-out labels, store and maybe activate."""
    options = parse_options(await read_body(request, services.settings.max_body_bytes))
    result = await asyncio.to_thread(lambda: services.lifecycle.refit(model=model, version=version,
                                                                      options=options, actor=actor))
    return JSONBytes(result, status_code=200 if options.dry_run else 201)


@router.post("/models/{model}/versions/{version}/calibrators/rollback",
             responses={200: {"model": ActivationResult}, **errors(409)})
async def rollback(model: str, version: str, services: ServicesDep, actor: AdminDep) -> Response:
    """Re-activate the calibrator that was active before the current one."""
    return JSONBytes(await asyncio.to_thread(
        lambda: services.lifecycle.rollback(model=model, version=version, actor=actor)))


@router.post("/models/{model}/versions/{version}/calibrators/{calibrator_version}/activate",
             responses={200: {"model": ActivationResult}})
async def activate(model: str, version: str, calibrator_version: str, services: ServicesDep,
                   actor: AdminDep) -> Response:
    """Activate a stored calibrator version (atomic; other replicas follow within the poll interval)."""
    number = parse_int(calibrator_version, "calibrator_version", low=1)
    return JSONBytes(await asyncio.to_thread(lambda: services.lifecycle.activate(
        model=model, version=version, calibrator_version=number, actor=actor)))


@router.put("/models/{model}/aliases/{alias}", responses={200: {"model": AliasResult}, **errors(*BODY)},
            openapi_extra=json_body(AliasBody.model_json_schema()))
async def put_alias(model: str, alias: str, request: Request, services: ServicesDep, actor: AdminDep) -> Response:
    """Point an alias (e.g. production) at a loaded version."""
    try:
        body = AliasBody.model_validate_json(await read_body(request, services.settings.max_body_bytes) or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}") from None
    return JSONBytes(await asyncio.to_thread(lambda: services.lifecycle.set_alias(
        model=model, alias=alias, version=body.version, actor=actor)))


@router.put("/models/{model}/cost-matrix", status_code=201,
            responses={201: {"model": CostMatrixPublic, "description": "the new, active cost-matrix version"},
                       **errors(*BODY)})
async def put_cost_matrix(model: str, request: Request, services: ServicesDep, actor: AdminDep) -> Response:
    """Set the model's cost matrix C[action][class] (+ optional action names) as a new, active version."""
    body = json_object(await read_body(request, services.settings.max_body_bytes))
    return JSONBytes(await asyncio.to_thread(lambda: services.lifecycle.set_cost_matrix(
        model=model, body=body, actor=actor)), status_code=201)


@router.get("/models/{model}/cost-matrices", responses={200: {"model": CostMatrices}})
async def list_cost_matrices(model: str, services: ServicesDep) -> Response:
    """Every cost-matrix version of the model, oldest first."""
    return JSONBytes({"cost_matrices": await asyncio.to_thread(lambda: services.lifecycle.cost_matrices(
        model=model))})


@router.post("/models/{model}/cost-matrices/{cost_matrix_version}/activate",
             responses={200: {"model": CostMatrixPublic}})
async def activate_cost_matrix(model: str, cost_matrix_version: str, services: ServicesDep,
                               actor: AdminDep) -> Response:
    """Re-activate a stored cost-matrix version (a rollback)."""
    cmv = parse_int(cost_matrix_version, "cost_matrix_version", low=1)
    return JSONBytes(await asyncio.to_thread(lambda: services.lifecycle.activate_cost_matrix(
        model=model, cost_matrix_version=cmv, actor=actor)))


@router.get("/audit", responses={200: {"model": AuditLog}})
async def audit_log(services: ServicesDep, limit: str = "100") -> Response:
    """The most recent admin actions (``limit`` between 1 and 1000)."""
    n = parse_int(limit, "limit", low=1, high=1000)
    entries = await asyncio.to_thread(lambda: services.lifecycle.audit_log(limit=n))
    return JSONBytes({"entries": entries})
