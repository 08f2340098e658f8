"""Open Inference Protocol (KServe V2) REST endpoints, verbatim paths and bodies."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from service import __version__
from service.api.deps import ServicesDep
from service.api.http import JSONBytes
from service.errors import ModelNotReady
from service.handlers import oip
from service.repository.loaded import LoadedVersion
from service.repository.registry import ModelEntry

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
    """Readiness: a model serves and the prediction log can take rows (a database outage alone does not
    make predict unready: rows are spooled durably; feedback and admin answer 503 meanwhile)."""
    writer = services.writer
    registry = services.registry
    ok = registry.ready() and not writer.saturated()
    body = {"ready": ok, "prediction_log": {"queue_depth": writer.depth(), "spool_bytes": writer.spool_bytes(),
                                            "spool_max_bytes": writer.max_spool_bytes, "dropped": writer.dropped,
                                            "refused": writer.refused, "saturated": writer.saturated(),
                                            "database_ok": writer.database_ok},
            "models": {name: _model_status(e) for name, e in registry.models.items()}}
    return JSONBytes(body, status_code=200 if ok else 503)


def _model_status(entry: ModelEntry) -> dict[str, object]:
    status: dict[str, object] = {
        "versions": sorted(entry.versions), "version_policy": entry.policy.describe(),
        "errors": {str(k): v for k, v in sorted(entry.errors.items())},
    }
    if entry.error is not None:
        status["error"] = entry.error
    return status


def _metadata(loaded: LoadedVersion, entry: ModelEntry) -> dict[str, object]:
    card = loaded.card
    k = len(card.classes)
    serving = loaded.serving
    # OIP parameter values are strings, numbers or booleans: lists and maps travel as JSON text.
    parameters: dict[str, object] = {"classes": orjson.dumps(card.classes).decode(),
                                     "output_kind": loaded.classifier.output_kind}
    if serving is not None:
        parameters |= {"calibrator_version": serving.calibrator_version, "calibration_method": serving.method}
    if entry.errors:
        parameters["load_errors"] = orjson.dumps({str(v): e for v, e in sorted(entry.errors.items())}).decode()
    return {
        "name": loaded.name, "versions": [str(v) for v in sorted(entry.versions)], "platform": "onnx_onnxv1",
        "inputs": [{"name": card.input.name, "datatype": oip.DTYPE_NAMES[card.input.dtype],
                    "shape": oip.input_shape(loaded)}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
                    {"name": "raw_probabilities", "datatype": "FP32", "shape": [-1, k]},
                    {"name": "logits", "datatype": "FP32", "shape": [-1, k]},
                    {"name": "label", "datatype": "BYTES", "shape": [-1]}],
        "parameters": parameters,
    }


@router.get("/models/{model}")
@router.get("/models/{model}/versions/{version}")
async def model_metadata(model: str, services: ServicesDep, version: str | None = None) -> Response:
    """Model metadata: inputs, the four outputs, classes, the active calibrator and load errors."""
    loaded = services.registry.resolve(model, version)
    return JSONBytes(_metadata(loaded, services.registry.models[model]))


@router.get("/models/{model}/ready")
@router.get("/models/{model}/versions/{version}/ready")
async def model_ready(model: str, services: ServicesDep, version: str | None = None) -> Response:
    """Model readiness: 200 when the version serves (loaded, with a calibrator); 400 with the reason if not."""
    try:
        services.registry.resolve(model, version)
    except ModelNotReady as exc:  # the spec's "4xx = not ready"; unknown models stay 404
        return JSONBytes({"name": model, "ready": False, "error": exc.message}, status_code=400)
    return JSONBytes({"name": model, "ready": True})


# POST /v2/models/{m}[/versions/{v}]/infer is served by the ASGI fast path (api/fast_path.py).
