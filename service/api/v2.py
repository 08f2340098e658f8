"""Open Inference Protocol (KServe V2) REST endpoints, verbatim paths and bodies."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import __version__
from service.api.deps import ServicesDep
from service.api.http import JSONBytes, read_body
from service.handlers import inference, oip
from service.repository.registry import LoadedVersion

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

EXTENSIONS = ["calibration", "classification", "binary_tensor_data", "model_repository"]


@router.get("")
async def server_metadata() -> Response:
    """Server metadata; advertises the `calibration` extension."""
    return JSONBytes({"name": "calibserve", "version": __version__, "extensions": EXTENSIONS})


@router.get("/health/live")
async def live() -> Response:
    """Liveness: the process answers."""
    return JSONBytes({"live": True})


@router.get("/health/ready")
async def ready(services: ServicesDep) -> Response:
    """Readiness: at least one model serves, and the prediction log is not saturated."""
    writer = services.writer
    ok = services.registry.ready() and not writer.saturated()
    body = {"ready": ok, "prediction_log": {"queue_depth": writer.depth(), "dropped": writer.dropped,
                                            "saturated": writer.saturated()},
            "models": {name: {"versions": sorted(e.versions), "errors": {str(k): v for k, v in e.errors.items()}}
                       for name, e in services.registry.models.items()}}
    return JSONBytes(body, status_code=200 if ok else 503)


def _metadata(loaded: LoadedVersion, versions: list[int]) -> dict[str, object]:
    card = loaded.card
    k = len(card.classes)
    return {
        "name": loaded.name, "versions": [str(v) for v in versions], "platform": "onnx_onnxv1",
        "inputs": [{"name": card.input.name, "datatype": oip.DTYPE_NAMES[card.input.dtype],
                    "shape": [-1, *card.input.shape]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
                    {"name": "raw_probabilities", "datatype": "FP32", "shape": [-1, k]},
                    {"name": "logits", "datatype": "FP32", "shape": [-1, k]},
                    {"name": "label", "datatype": "BYTES", "shape": [-1]}],
        "parameters": {"classes": card.classes,
                       "calibrator_version": loaded.serving.calibrator_version if loaded.serving else None,
                       "calibration_method": loaded.serving.method if loaded.serving else None},
    }


@router.get("/models/{model}")
@router.get("/models/{model}/versions/{version}")
async def model_metadata(model: str, services: ServicesDep, version: str | None = None) -> Response:
    """Model metadata: inputs, the four outputs, classes and the active calibrator."""
    loaded = services.registry.resolve(model, version)
    return JSONBytes(_metadata(loaded, sorted(services.registry.models[model].versions)))


@router.get("/models/{model}/ready")
@router.get("/models/{model}/versions/{version}/ready")
async def model_ready(model: str, services: ServicesDep, version: str | None = None) -> Response:
    """Model readiness: 200 when the version is loaded with a calibrator."""
    loaded = services.registry.resolve(model, version)
    return JSONBytes({"name": model, "ready": loaded.serving is not None})


@router.post("/models/{model}/infer")
@router.post("/models/{model}/versions/{version}/infer")
async def infer(model: str, request: Request, services: ServicesDep, version: str | None = None) -> Response:
    """Inference (JSON or binary tensors; the body is read raw: tritonclient sends no Content-Type)."""
    started = time.perf_counter()
    body = await read_body(request, services.settings.max_body_bytes)
    loaded = services.registry.resolve(model, version)
    parsed = oip.parse_request(body, request.headers.get("inference-header-content-length"), loaded)
    batch = inference.predict(services, model=model, ref=loaded.version, rows=parsed.rows,
                              tags=parsed.tags)
    content, headers = oip.render_response(batch, parsed)
    v = str(batch.loaded.version)
    services.metrics.latency.labels("v2_infer", model, v).observe(time.perf_counter() - started)
    services.metrics.requests.labels("v2_infer", model, v, "200").inc()
    media = "application/octet-stream" if "inference-header-content-length" in headers else "application/json"
    return Response(content, headers=headers, media_type=media)
