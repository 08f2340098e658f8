"""Native REST (v1): predict and model listing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.api.deps import ServicesDep, services_of
from service.api.http import JSONBytes, read_body, render
from service.handlers.v1_codec import V1Codec

router = APIRouter(prefix="/v1", tags=["predict"])
V1_CODEC = V1Codec()


def _openapi(*params: str) -> dict[str, Any]:
    """Document what the hot path reads by hand: path parameters and the JSON body."""
    body = {"type": "object", "required": ["instances"], "properties": {
        "instances": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "top_k": {"type": "integer", "minimum": 1}, "tags": {"type": "object"}}}
    return {"parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


# The hot path declares only ``request``: every declared parameter or dependency costs FastAPI a
# validation pass per request, so path parameters and services are read directly.
@router.post("/models/{model}/predict", openapi_extra=_openapi("model"))
async def predict_default(request: Request) -> Response:
    """Predict with the model's `production` alias (else its newest version); calibrated confidences."""
    return await _predict(request, None)


@router.post("/models/{model}/versions/{ref}/predict", openapi_extra=_openapi("model", "ref"))
async def predict_version(request: Request) -> Response:
    """Predict with a version number or an alias; calibrated confidences."""
    return await _predict(request, request.path_params["ref"])


async def _predict(request: Request, ref: str | None) -> Response:
    services = services_of(request)
    rendered = await services.predictor.predict(
        V1_CODEC, request.path_params["model"], ref,
        lambda: read_body(request, services.settings.max_body_bytes), request.headers)
    return render(rendered)


@router.get("/models")
async def list_models(services: ServicesDep) -> Response:
    """Models in the repository: loaded versions, their active calibrator, load errors, aliases."""
    out = []
    for name, entry in sorted(services.registry.models.items()):
        out.append({
            "name": name,
            "versions": [
                {"version": v.version, "classes": v.card.classes, "loss": v.card.loss.model_dump(),
                 "calibrator_version": v.serving.calibrator_version if v.serving else None,
                 "calibration_method": v.serving.method if v.serving else None}
                for v in sorted(entry.versions.values(), key=lambda x: x.version)
            ],
            "errors": {str(k): e for k, e in entry.errors.items()},
            "aliases": {a: v for (m, a), v in services.registry.aliases.items() if m == name},
        })
    return JSONBytes({"models": out})
