"""Open Inference Protocol (KServe V2) REST endpoints, verbatim paths and bodies."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import __version__
from service.api.deps import ServicesDep, database_probe
from service.api.http import JSONBytes
from service.api.openapi import errors
from service.api.schemas import Live, ModelMetadata, ModelReady, Ready, ServerMetadata
from service.errors import ModelNotReady
from service.handlers import oip
from service.repository.loaded import LoadedVersion
from service.repository.registry import ModelEntry

router = APIRouter(prefix="/v2", tags=["open inference protocol"])


METADATA = {200: {"model": ModelMetadata}, **errors(400, 404, 503)}
MODEL_READY = {200: {"model": ModelReady}, **errors(404),
               400: {"model": ModelReady, "description": "not ready (the reason in 'error'), or an invalid version"}}
EXTENSIONS = ["calibration", "classification", "binary_tensor_data", "model_repository"]


@router.get("", responses={200: {"model": ServerMetadata}})
async def server_metadata() -> Response:
    """Server metadata; advertises the `calibration` extension."""
    return JSONBytes({"name": "calibserve", "version": __version__, "extensions": EXTENSIONS})


@router.get("/health/live", responses={200: {"model": Live}})
async def live() -> Response:
    """Liveness: the process answers."""
    return JSONBytes({"live": True})


@router.get("/health/ready",
            responses={200: {"model": Ready}, 503: {"model": Ready, "description": "not ready; the body says why"}})
async def ready(request: Request, services: ServicesDep) -> Response:
    """Readiness: a model serves and the prediction log can keep rows (its spool is below the bound).

    The database state comes from a cached probe (at most one ``SELECT 1`` per ``database_probe_seconds``)
    and is reported; by default an unreachable database does not fail readiness, because predictions are
    spooled durably through an outage (feedback and admin answer 503 + Retry-After meanwhile). With
    ``ready_requires_database=true`` it does. With a control process, ``control_process`` says whether it
    answers (feedback and calibration queries answer 503 + Retry-After while it restarts); predictions do not
    depend on it. See docs/reliability.md and docs/prediction_log.md."""
    writer = services.writer
    registry = services.registry
    database = await asyncio.to_thread(database_probe(request).check)
    ok = (registry.ready() and not writer.saturated()
          and (database.reachable or not services.settings.ready_requires_database))
    body = {"ready": ok, "database": database.describe(),
            "prediction_log": {"queue_depth": writer.depth(), "spool_bytes": writer.spool_bytes(),
                               "spool_max_bytes": writer.max_spool_bytes, "dropped": writer.dropped,
                               "refused": writer.refused, "saturated": writer.saturated(),
                               "shipping": writer.database_ok},
            "models": {name: _model_status(e) for name, e in registry.models.items()}}
    control = getattr(request.app, "control", None)
    if control is not None:  # predictions do not need it: a dead one is reported and started again, not a 503
        body["control_process"] = await control.reachable()
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


@router.get("/models/{model}", responses=METADATA)
@router.get("/models/{model}/versions/{version}", responses=METADATA)
async def model_metadata(model: str, services: ServicesDep, version: str | None = None) -> Response:
    """Model metadata: inputs, the four outputs, classes, the active calibrator and load errors."""
    loaded = services.registry.resolve(model, version)
    return JSONBytes(_metadata(loaded, services.registry.models[model]))


@router.get("/models/{model}/ready", responses=MODEL_READY)
@router.get("/models/{model}/versions/{version}/ready", responses=MODEL_READY)
async def model_ready(model: str, services: ServicesDep, version: str | None = None) -> Response:
    """Model readiness: 200 when the version serves (loaded, with a calibrator); 400 with the reason if not."""
    try:
        services.registry.resolve(model, version)
    except ModelNotReady as exc:  # the spec's "4xx = not ready"; unknown models stay 404
        return JSONBytes({"name": model, "ready": False, "error": exc.message}, status_code=400)
    return JSONBytes({"name": model, "ready": True})


# POST /v2/models/{m}[/versions/{v}]/infer is served by the ASGI fast path (api/fast_path.py).
