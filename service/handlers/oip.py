"""Open Inference Protocol codec: JSON and binary-tensor requests in, responses out.

Spec: kserve/open-inference-protocol ``inference_rest.md`` and Triton's binary-data and classification
extensions. The binary extension puts a JSON header of ``Inference-Header-Content-Length`` bytes first and
the raw little-endian tensors after it, in input order, sized by each input's ``binary_data_size``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from service.errors import InvalidInput
from service.handlers.inference import PredictionBatch, check_features
from service.repository.registry import LoadedVersion

NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
}
DTYPE_NAMES = {"float32": "FP32", "float64": "FP64"}
OUTPUTS = ("probabilities", "raw_probabilities", "logits", "label")


@dataclass
class RequestedOutput:
    name: str
    binary: bool
    classification: int | None


@dataclass
class ParsedRequest:
    rows: np.ndarray
    request_id: str | None
    outputs: list[RequestedOutput]
    tags: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_request(body: bytes, header_length: str | None, loaded: LoadedVersion) -> ParsedRequest:
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidInput("Inference-Header-Content-Length is not a valid length for this body")
        json_part, binary = body[: int(header_length)], body[int(header_length):]
    else:
        json_part, binary = body, b""
    try:
        req = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list) or not req["inputs"]:
        raise InvalidInput("an inference request needs a non-empty 'inputs' list")
    card = loaded.card
    expected = card.input.name
    inputs = req["inputs"]
    if len(inputs) != 1:
        raise InvalidInput(f"model '{loaded.name}' takes exactly one input, '{expected}'; got {len(inputs)}")
    tensor = _decode_input(inputs[0], binary, expected)
    n_features = loaded.classifier.n_features
    if tensor.ndim == 0 or tensor.size % n_features or tensor.shape[0] == 0:
        raise InvalidInput(f"input '{expected}' must have shape [batch, {n_features}], got {list(tensor.shape)}")
    rows = check_features(tensor.reshape(tensor.shape[0], -1).astype(np.float64, copy=False), n_features)
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be a JSON object")
    binary_all = bool(params.get("binary_data_output", False))
    outputs = _requested_outputs(req.get("outputs"), binary_all)
    tags = params.get("tags") if isinstance(params.get("tags"), dict) else None
    rid = req.get("id")
    return ParsedRequest(rows, str(rid) if rid is not None else None, outputs, tags, params)


def _decode_input(spec: Any, binary: bytes, expected: str) -> np.ndarray:
    if not isinstance(spec, dict):
        raise InvalidInput("each input must be a JSON object")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if name != expected:
        raise InvalidInput(f"unknown input '{name}': this model's input is '{expected}'")
    if datatype not in NUMPY_DTYPES:
        raise InvalidInput(f"input '{name}' has datatype {datatype!r}; use FP32, FP64 or an integer type")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InvalidInput(f"input '{name}' needs 'shape' as a list of non-negative integers")
    count = int(np.prod(shape)) if shape else 1
    dtype = NUMPY_DTYPES[datatype]
    size = (spec.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize or size > len(binary):
            raise InvalidInput(f"input '{name}': binary_data_size {size} does not match shape {shape} of "
                               f"{datatype} ({count * dtype.itemsize} bytes) or the body")
        return np.frombuffer(binary[:size], dtype=dtype).reshape(shape)
    data = spec.get("data")
    if data is None:
        raise InvalidInput(f"input '{name}' has no 'data'")
    try:
        arr = np.asarray(data)
    except ValueError:
        raise InvalidInput(f"input '{name}': 'data' is ragged") from None
    if arr.dtype.kind not in "iuf":
        raise InvalidInput(f"input '{name}': 'data' must contain only numbers")
    if arr.size != count:
        raise InvalidInput(f"input '{name}': 'data' has {arr.size} values but shape {shape} needs {count}")
    return arr.reshape(shape)


def _requested_outputs(specs: Any, binary_all: bool) -> list[RequestedOutput]:
    if specs is None:
        return [RequestedOutput(n, binary_all, None) for n in OUTPUTS]
    if not isinstance(specs, list):
        raise InvalidInput("'outputs' must be a list")
    out = []
    for spec in specs:
        name = spec.get("name") if isinstance(spec, dict) else None
        if name not in OUTPUTS:
            raise InvalidInput(f"unknown output '{name}': choose from {list(OUTPUTS)}")
        params = spec.get("parameters") or {}
        k = params.get("classification")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InvalidInput(f"output '{name}': classification must be a positive integer")
        out.append(RequestedOutput(name, bool(params.get("binary_data", binary_all)), k))
    return out


def _tensor(batch: PredictionBatch, out: RequestedOutput) -> tuple[str, list[int], Any]:
    n = len(batch.prediction_ids)
    classes = batch.classes
    if out.name == "label":
        return "BYTES", [n], [classes[int(k)] for k in batch.class_index]
    values = {"probabilities": batch.probabilities, "raw_probabilities": batch.raw_probabilities(),
              "logits": batch.logits}[out.name]
    if out.classification is not None:  # Triton classification extension: "<value>:<index>:<label>"
        k = min(out.classification, len(classes))
        order = np.argsort(-values, axis=1)[:, :k]
        strings = [f"{values[i, j]:.6f}:{j}:{classes[j]}" for i in range(n) for j in order[i]]
        return "BYTES", [n, k], strings
    return "FP32", list(values.shape), values.astype("<f4")


def render_response(batch: PredictionBatch, req: ParsedRequest) -> tuple[bytes, dict[str, str]]:
    outputs, blobs = [], []
    for out in req.outputs:
        datatype, shape, data = _tensor(batch, out)
        entry: dict[str, Any] = {"name": out.name, "datatype": datatype, "shape": shape}
        if out.binary:
            blob = _bytes_blob(data) if datatype == "BYTES" else np.ascontiguousarray(data).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = data if datatype == "BYTES" else data.reshape(-1)
        outputs.append(entry)
    response: dict[str, Any] = {
        "model_name": batch.loaded.name, "model_version": str(batch.loaded.version), "outputs": outputs,
        "parameters": {"calibrator_version": batch.serving.calibrator_version,
                       "calibration_method": batch.serving.method,
                       "prediction_ids": ",".join(batch.prediction_ids)},
    }
    if req.request_id is not None:
        response["id"] = req.request_id
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {}
    return header + b"".join(blobs), {"inference-header-content-length": str(len(header))}


def _bytes_blob(strings: list[str]) -> bytes:
    parts = []
    for s in strings:
        b = s.encode()
        parts.append(struct.pack("<I", len(b)) + b)
    return b"".join(parts)
