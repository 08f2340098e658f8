"""OpenAPI for the predict routes the ASGI fast path serves (FastAPI never sees them, so it cannot document
them): request bodies, response bodies and every status they answer, with the one error schema."""

from __future__ import annotations

from typing import Any

ERROR = {"type": "object", "required": ["error"], "additionalProperties": False,
         "properties": {"error": {"type": "string", "description": "one sentence saying what was wrong"}}}
RETRY_AFTER = {"Retry-After": {"description": "seconds after which to retry", "schema": {"type": "integer"}}}

V1_REQUEST = {"type": "object", "required": ["instances"], "properties": {
    "instances": {"type": "array", "minItems": 1, "items": {"type": "array", "items": {"type": "number"}},
                  "description": "rows of the model's features"},
    "top_k": {"type": "integer", "minimum": 1}, "tags": {"type": "object"}}}
V1_RESPONSE = {"type": "object", "required": ["model", "model_version", "calibrator_version", "calibration_method",
                                              "classes", "predictions"], "properties": {
    "model": {"type": "string"}, "model_version": {"type": "integer"}, "calibrator_version": {"type": "integer"},
    "calibration_method": {"type": "string"}, "classes": {"type": "array", "items": {"type": "string"}},
    "predictions": {"type": "array", "items": {"type": "object", "required": [
        "prediction_id", "label", "class_index", "confidence", "probabilities"], "properties": {
        "prediction_id": {"type": "string", "format": "uuid"}, "label": {"type": "string"},
        "class_index": {"type": "integer"}, "confidence": {"type": "number"},
        "probabilities": {"type": "array", "items": {"type": "number"}},
        "top_k": {"type": "array", "items": {"type": "object", "properties": {
            "label": {"type": "string"}, "class_index": {"type": "integer"}, "probability": {"type": "number"}}}}}}},
}}
TENSOR = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "parameters": {"type": "object"}, "data": {"type": "array"}}}
V2_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"}, "inputs": {"type": "array", "minItems": 1, "items": TENSOR},
    "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "enum": ["probabilities", "raw_probabilities", "logits", "label"]},
        "parameters": {"type": "object"}}}},
    "parameters": {"type": "object", "description": "binary_data_output, tags"}}}
V2_RESPONSE = {"type": "object", "required": ["model_name", "model_version", "outputs", "parameters"], "properties": {
    "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
    "outputs": {"type": "array", "items": TENSOR},
    "parameters": {"type": "object", "properties": {
        "calibrator_version": {"type": "integer"}, "calibration_method": {"type": "string"},
        "prediction_ids": {"type": "string", "description": "comma-separated, one per row"}}}}}

ERRORS = {
    "400": "the body, a tensor, a shape or a value is not valid for this model (NaN, beyond float32, …)",
    "404": "no such model, version or alias",
    "413": "the body or the batch exceeds its limit (max_body_bytes, max_batch_rows)",
    "503": "the version is not ready, or the prediction log is at its disk bound (retry after Retry-After)",
}


def _operation(summary: str, request: dict[str, Any], response: dict[str, Any], binary: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": request}}
    if binary:  # the binary-tensor extension: a JSON header of Inference-Header-Content-Length bytes, then tensors
        content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    responses: dict[str, Any] = {"200": {"description": "calibrated predictions",
                                         "content": {"application/json": {"schema": response}}}}
    for code, text in ERRORS.items():
        responses[code] = {"description": text, "content": {"application/json": {"schema": ERROR}}}
    responses["503"]["headers"] = RETRY_AFTER
    return {"post": {"summary": summary, "tags": ["predict"], "requestBody": {"required": True, "content": content},
                     "responses": responses}}


def _parameters(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def openapi_paths() -> dict[str, Any]:
    v1 = _operation("Predict: calibrated confidences and a prediction_id per instance", V1_REQUEST, V1_RESPONSE,
                    binary=False)
    v2 = _operation("Open Inference Protocol inference (JSON or binary tensors)", V2_REQUEST, V2_RESPONSE,
                    binary=True)
    paths: dict[str, Any] = {}
    for path, op, params in (
        ("/v1/models/{model}/predict", v1, ("model",)),
        ("/v1/models/{model}/versions/{ref}/predict", v1, ("model", "ref")),
        ("/v2/models/{model}/infer", v2, ("model",)),
        ("/v2/models/{model}/versions/{version}/infer", v2, ("model", "version")),
    ):
        paths[path] = {"post": {**op["post"], "parameters": _parameters(*params)}}
    return paths
