"""Model repository extension (Triton's ``model_repository``; MLServer copies it), behind the admin token.

``POST /v2/repository/index`` lists every model version with its state; ``…/models/{m}/load`` (re)loads a
model under its version policy — optionally overridden by ``{"parameters": {"config": "<json>"}}`` exactly
as Triton's load request carries it — and ``…/unload`` stops serving it. Bodies and responses are
Triton's, so ``tritonclient`` ``get_model_repository_index``/``load_model``/``unload_model`` work.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from service.api.deps import AdminDep, ServicesDep, require_admin
from service.api.http import JSONBytes, read_body
from service.api.openapi import BODY, errors, json_body
from service.api.schemas import REPOSITORY_REQUEST, RepositoryIndexEntry
from service.errors import InvalidInput
from service.handlers.json_body import decode_json
from service.handlers.services import Services
from service.validation import check_name

router = APIRouter(prefix="/v2/repository", tags=["model repository"], dependencies=[Depends(require_admin)],
                   responses=errors(*BODY, 401, 403))
OPTIONAL_BODY = json_body(REPOSITORY_REQUEST, required=False)
EMPTY_200: dict[int | str, dict[str, Any]] = {200: {"description": "done (empty body, as Triton)", "content": {}}}


async def _optional_object(request: Request, services: Services) -> dict[str, Any]:
    """The body as a JSON object; tritonclient sends an empty body when there is nothing to say."""
    body = await read_body(request, services.settings.max_body_bytes)
    if not body.strip():
        return {}
    data = decode_json(body)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


def _parameters(data: dict[str, Any]) -> dict[str, Any]:
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be a JSON object")
    return params


@router.post("/index", responses={200: {"model": list[RepositoryIndexEntry]}}, openapi_extra=OPTIONAL_BODY)
async def index(request: Request, services: ServicesDep) -> Response:
    """Every model version in the repository with its state (READY / UNAVAILABLE) and the reason."""
    data = await _optional_object(request, services)
    only_ready = data.get("ready", False)
    if not isinstance(only_ready, bool):
        raise InvalidInput("'ready' must be a boolean")
    rows = await asyncio.to_thread(services.registry.index)
    return JSONBytes([{"name": r.name, "version": r.version, "state": r.state, "reason": r.reason}
                      for r in rows if r.state == "READY" or not only_ready])


@router.post("/models/{model}/load", response_class=Response, responses={**EMPTY_200, **errors(404, 503)},
             openapi_extra=OPTIONAL_BODY)
async def load(model: str, request: Request, services: ServicesDep, actor: AdminDep) -> Response:
    """(Re)load a model: new versions are loaded, unchanged ones keep serving without a gap."""
    check_name(model)  # before it becomes a path (a 300-byte name is ENAMETOOLONG)
    params = _parameters(await _optional_object(request, services))
    if any(key.startswith("file:") for key in params):
        raise InvalidInput("file overrides are not supported: put the version directory in the repository")
    config = params.get("config")
    if config is not None and not isinstance(config, str | dict):
        raise InvalidInput("parameters.config must be a JSON string holding the model configuration")
    entry = await asyncio.to_thread(services.registry.load_model, model, config)
    await asyncio.to_thread(lambda: services.lifecycle.record(
        actor=actor, action="load_model", model=model,
        detail={"versions": sorted(entry.versions), "errors": entry.errors, "config": config}))
    if not entry.versions:  # Triton answers a load that leaves nothing serving with an error
        reason = entry.error or "; ".join(f"version {v}: {e}" for v, e in sorted(entry.errors.items()))
        raise InvalidInput(f"model '{model}' has no loadable version: {reason or 'no version directories'}")
    return Response(status_code=200)


@router.post("/models/{model}/unload", response_class=Response, responses={**EMPTY_200, **errors(404, 503)},
             openapi_extra=OPTIONAL_BODY)
async def unload(model: str, request: Request, services: ServicesDep, actor: AdminDep) -> Response:
    """Stop serving a model (requests in flight finish on the version they resolved)."""
    check_name(model)
    params = _parameters(await _optional_object(request, services))
    await asyncio.to_thread(services.registry.unload_model, model)
    await asyncio.to_thread(lambda: services.lifecycle.record(
        actor=actor, action="unload_model", model=model,
        detail={"unload_dependents": params.get("unload_dependents")}))
    return Response(status_code=200)
