"""Native REST (v1): predict and model listing."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.api.deps import ServicesDep, services_of
from service.api.http import JSONBytes, json_object, read_body
from service.errors import InvalidInput
from service.handlers import inference
from service.handlers.inference import PredictionBatch

router = APIRouter(prefix="/v1", tags=["predict"])


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
    return await _predict(request.path_params["model"], None, request)


@router.post("/models/{model}/versions/{ref}/predict", openapi_extra=_openapi("model", "ref"))
async def predict_version(request: Request) -> Response:
    """Predict with a version number or an alias; calibrated confidences."""
    return await _predict(request.path_params["model"], request.path_params["ref"], request)


async def _predict(model: str, ref: str | None, request: Request) -> Response:
    started = time.perf_counter()
    services = services_of(request)
    body = json_object(await read_body(request, services.settings.max_body_bytes))
    loaded = services.registry.resolve(model, ref)
    rows = inference.as_feature_matrix(body.get("instances"), loaded.classifier.n_features)
    top_k = _top_k(body.get("top_k"), len(loaded.card.classes))
    tags = body.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise InvalidInput("tags must be a JSON object")
    batch = inference.predict(services, model=model, ref=loaded.version, rows=rows, tags=tags)
    content = render_predictions(batch, top_k)
    version = str(batch.loaded.version)
    services.metrics.latency.labels("v1_predict", model, version).observe(time.perf_counter() - started)
    services.metrics.requests.labels("v1_predict", model, version, "200").inc()
    return JSONBytes(content)


def _top_k(value: Any, n_classes: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n_classes:
        raise InvalidInput(f"top_k must be an integer between 1 and {n_classes}")
    return value


def render_predictions(batch: PredictionBatch, top_k: int | None) -> dict[str, Any]:
    classes = batch.classes
    probs = batch.probabilities
    order = np.argsort(-probs, axis=1)[:, :top_k] if top_k else None
    predictions = []
    for i, pid in enumerate(batch.prediction_ids):
        k = int(batch.class_index[i])
        item: dict[str, Any] = {
            "prediction_id": pid, "label": classes[k], "class_index": k,
            "confidence": float(batch.confidence[i]), "probabilities": probs[i],
        }
        if order is not None:
            item["top_k"] = [{"label": classes[j], "class_index": int(j), "probability": float(probs[i, j])}
                             for j in order[i]]
        predictions.append(item)
    return {
        "model": batch.loaded.name, "model_version": batch.loaded.version,
        "calibrator_version": batch.serving.calibrator_version, "calibration_method": batch.serving.method,
        "classes": classes, "predictions": predictions,
    }


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
