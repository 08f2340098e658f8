"""Admin API (Bearer token, declared once on the router): re-fit, activate, roll back, aliases, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from service.api.deps import AdminDep, ServicesDep, require_admin
from service.api.http import JSONBytes, read_body
from service.db import aliases, audit
from service.errors import InvalidInput
from service.handlers import calibrators as lifecycle

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class RefitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str = "temperature"
    last_n: int | None = Field(default=10_000, ge=1)
    start: datetime | None = None
    end: datetime | None = None
    dry_run: bool = False
    activate: Literal["never", "if_better", "always"] = "if_better"
    test_size: float = Field(default=0.3, gt=0.05, lt=0.95)
    seed: int = 0
    min_labels: int = Field(default=100, ge=10)
    min_per_class: int = Field(default=2, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


def _parse(body: bytes, schema: type[BaseModel]) -> Any:
    try:
        return schema.model_validate_json(body or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}") from None


@router.post("/models/{model}/versions/{version}/calibrators")
async def refit(model: str, version: str, request: Request, services: ServicesDep, actor: AdminDep) -> Response:
    """Re-fit a calibrator from stored feedback, evaluate on held-out labels, store and maybe activate."""
    body: RefitBody = _parse(await read_body(request, services.settings.max_body_bytes), RefitBody)
    req = lifecycle.RefitRequest(**body.model_dump())
    result = await run_in_threadpool(lambda: lifecycle.refit(services, model=model, version=version, req=req,
                                                             actor=actor))
    return JSONBytes(result, status_code=200 if req.dry_run else 201)


@router.post("/models/{model}/versions/{version}/calibrators/rollback")
async def rollback(model: str, version: str, services: ServicesDep, actor: AdminDep) -> Response:
    """Re-activate the calibrator that was active before the current one."""
    return JSONBytes(await run_in_threadpool(
        lambda: lifecycle.rollback(services, model=model, version=version, actor=actor)))


@router.post("/models/{model}/versions/{version}/calibrators/{calibrator_version}/activate")
async def activate(model: str, version: str, calibrator_version: int, services: ServicesDep,
                   actor: AdminDep) -> Response:
    """Activate a stored calibrator version (atomic; other replicas follow within the poll interval)."""
    return JSONBytes(await run_in_threadpool(lambda: lifecycle.activate(
        services, model=model, version=version, calibrator_version=calibrator_version, actor=actor)))


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)


@router.put("/models/{model}/aliases/{alias}")
async def put_alias(model: str, alias: str, request: Request, services: ServicesDep, actor: AdminDep) -> Response:
    """Point an alias (e.g. production) at a loaded version."""
    body: AliasBody = _parse(await read_body(request, services.settings.max_body_bytes), AliasBody)
    if alias.isdigit():
        raise InvalidInput("an alias cannot be a number (it would shadow a version)")
    services.registry.resolve(model, body.version)  # must exist and be ready
    with services.sessions() as session:
        aliases.set_alias(session=session, model=model, alias=alias, version=body.version)
        audit.record(session=session, actor=actor, action="set_alias", model=model, version=body.version,
                     detail={"alias": alias})
        session.commit()
    services.registry.sync_calibrators(entries=[])
    return JSONBytes({"model": model, "alias": alias, "version": body.version})


@router.get("/audit")
async def audit_log(services: ServicesDep, limit: int = 100) -> Response:
    """The most recent admin actions."""
    with services.sessions() as session:
        rows = audit.recent(session=session, limit=min(max(limit, 1), 1000))
        return JSONBytes({"entries": [{"at": r.at.isoformat(), "actor": r.actor, "action": r.action,
                                       "model": r.model, "version": r.version, "detail": r.detail}
                                      for r in rows]})
