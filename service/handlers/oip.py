"""Open Inference Protocol codec: JSON and binary-tensor requests in, responses out.

Spec: kserve/open-inference-protocol ``inference_rest.md`` and Triton's binary-data and classification
extensions. The binary extension puts a JSON header of ``Inference-Header-Content-Length`` bytes first and
the raw little-endian tensors after it, in input order, sized by each input's ``binary_data_size``.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from service.calibration.decide import action_names
from service.errors import InvalidInput, PayloadTooLarge
from service.handlers.decision_options import DecisionAsk, parse_ask
from service.handlers.predictor import Decoded, PredictionBatch, Rendered
from service.repository.loaded import LoadedVersion
from service.validation import check_tags, is_number

NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
}
DTYPE_NAMES = {"float32": "FP32", "float64": "FP64"}
OUTPUTS = ("probabilities", "raw_probabilities", "logits", "label")
# present only when the request asked for them (parameters coverage / min_confidence / decision)
DECISION_OUTPUTS = ("prediction_set", "decision", "expected_cost")


@dataclass
class RequestedOutput:
    name: str
    binary: bool
    classification: int | None


@dataclass
class ParsedRequest(Decoded):
    request_id: str | None = None
    outputs: list[RequestedOutput] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


class V2Codec:
    """The Open Inference Protocol as a ``WireCodec``: (optionally compressed) JSON or binary tensors."""

    endpoint = "v2_infer"

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes

    def decode(self, body: bytes, headers: Mapping[str, str], loaded: LoadedVersion) -> ParsedRequest:
        raw = decompress(body, headers.get("content-encoding"), self.max_body_bytes)
        return parse_request(raw, headers.get("inference-header-content-length"), loaded)

    def render(self, batch: PredictionBatch, decoded: ParsedRequest) -> Rendered:
        content, extra = render_response(batch, decoded)
        return Rendered(content, "application/octet-stream" if extra else "application/json", extra or None)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo a request's ``Content-Encoding`` (tritonclient's ``request_compression_algorithm``), refusing
    to inflate past ``limit`` bytes: a small compressed body must not become a memory bomb."""
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInput(f"unsupported Content-Encoding '{encoding}': use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"the request body is not valid {encoding} data: {exc}") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"the decompressed request body exceeds the limit of {limit} bytes")
    return out


def parse_request(body: bytes, header_length: str | None, loaded: LoadedVersion) -> ParsedRequest:
    """Validate an inference request against ``loaded``'s card; every problem is an ``InvalidInput``."""
    if header_length is not None:
        if not is_number(header_length) or len(header_length) > 12 or int(header_length) > len(body):
            raise InvalidInput(f"Inference-Header-Content-Length {header_length!r} is not a valid length "
                               f"for a body of {len(body)} bytes")
        json_part, binary = body[: int(header_length)], body[int(header_length):]
    else:
        json_part, binary = body, b""
    if not json_part:
        raise InvalidInput("the inference request body is empty; send a JSON inference request")
    try:
        req = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list) or not req["inputs"]:
        raise InvalidInput("an inference request needs a non-empty 'inputs' list")
    card = loaded.card
    inputs = req["inputs"]
    if len(inputs) != 1:
        raise InvalidInput(f"model '{loaded.name}' takes exactly one input, '{card.input.name}'; "
                           f"got {len(inputs)}")
    tensor = _decode_input(inputs[0], binary, loaded)
    rows = tensor.reshape(tensor.shape[0], -1)
    params = req.get("parameters", {})
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be a JSON object")
    binary_all = params.get("binary_data_output", False) is True
    ask = parse_ask(params.get("coverage"), params.get("min_confidence"), params.get("decision"))
    outputs = _requested_outputs(req.get("outputs"), binary_all, ask)
    rid = req.get("id")
    return ParsedRequest(rows, _tags(params.get("tags")), ask=ask, request_id=str(rid) if rid is not None else None,
                         outputs=outputs, parameters=params)


def _tags(value: Any) -> dict[str, Any] | None:
    """Request tags for the prediction log: an object, or (spec-strict clients) a JSON object string."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidInput("parameters.tags must be a JSON object (or a string holding one)") from None
    if value is not None and not isinstance(value, dict):
        raise InvalidInput("parameters.tags must be a JSON object (or a string holding one)")
    return check_tags(value, "parameters.tags")


def input_shape(loaded: LoadedVersion) -> list[int]:
    """The declared input shape with the batch axis: [-1, *per-row shape]."""
    return [-1, *loaded.card.input.shape]


def _shape_fits(shape: list[int], loaded: LoadedVersion) -> bool:
    row = loaded.card.input.shape
    if len(shape) == 2 and shape[1] == loaded.classifier.n_features:  # flat rows are always accepted
        return True
    return len(shape) == len(row) + 1 and all(d == r or r == -1 for d, r in zip(shape[1:], row, strict=True))


def _decode_input(spec: Any, binary: bytes, loaded: LoadedVersion) -> np.ndarray:
    if not isinstance(spec, dict):
        raise InvalidInput("each input must be a JSON object with name, datatype, shape and data")
    expected = loaded.card.input.name
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if name != expected:
        raise InvalidInput(f"unknown input '{name}': this model's input is '{expected}'")
    declared = DTYPE_NAMES[loaded.card.input.dtype]
    if datatype != declared:
        raise InvalidInput(f"input '{name}' has datatype {datatype!r}; the model expects {declared!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InvalidInput(f"input '{name}' needs 'shape' as a list of non-negative integers")
    if not shape or shape[0] == 0 or not _shape_fits(shape, loaded):
        raise InvalidInput(f"input '{name}' has shape {shape}; the model expects {input_shape(loaded)} "
                           "with at least one row")
    count = math.prod(shape)  # Python ints: np.prod wraps at 2**63 ([2**58, 64] → 0)
    dtype = NUMPY_DTYPES[datatype]
    params = spec.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize or size > len(binary):
            raise InvalidInput(f"input '{name}': binary_data_size {size} does not match shape {shape} of "
                               f"{datatype} ({count * dtype.itemsize} bytes) or the {len(binary)} bytes sent")
        return np.frombuffer(binary, dtype=dtype, count=count).reshape(shape)
    data = spec.get("data")
    if data is None:
        raise InvalidInput(f"input '{name}' has no 'data' (and no binary_data_size parameter)")
    if not isinstance(data, list):
        raise InvalidInput(f"input '{name}': 'data' must be a JSON array of numbers")
    try:
        arr = np.asarray(data)  # nested (row-major) or flat, as the spec allows
    except ValueError:
        raise InvalidInput(f"input '{name}': 'data' is a ragged array; rows must have equal lengths") from None
    if arr.dtype.kind not in "iuf":
        raise InvalidInput(f"input '{name}': 'data' must contain only numbers (no strings, booleans or nulls)")
    if arr.size != count:
        raise InvalidInput(f"input '{name}': 'data' has {arr.size} values but shape {shape} needs {count}")
    return arr.reshape(shape)


def _asked_outputs(ask: DecisionAsk | None) -> list[str]:
    """The decision outputs this request's parameters produce."""
    if ask is None:
        return []
    decides = ask.min_confidence is not None or ask.decision
    return ([n for n, on in zip(DECISION_OUTPUTS, (ask.coverage is not None, decides, ask.decision), strict=True)
             if on])


def _requested_outputs(specs: Any, binary_all: bool, ask: DecisionAsk | None = None) -> list[RequestedOutput]:
    available = [*OUTPUTS, *_asked_outputs(ask)]
    if specs is None:
        return [RequestedOutput(n, binary_all, None) for n in available]
    if not isinstance(specs, list):
        raise InvalidInput("'outputs' must be a list")
    out = []
    for spec in specs:
        name = spec.get("name") if isinstance(spec, dict) else None
        if name in DECISION_OUTPUTS and name not in available:
            needs = {"prediction_set": "'coverage'", "decision": "'min_confidence' or 'decision'",
                     "expected_cost": "'decision'"}[name]
            raise InvalidInput(f"output '{name}' needs the request parameter {needs}")
        if name not in available:
            raise InvalidInput(f"unknown output '{name}': choose from {list(available)}")
        params = spec.get("parameters", {})
        if not isinstance(params, dict):
            raise InvalidInput(f"output '{name}': 'parameters' must be a JSON object")
        k = params.get("classification")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InvalidInput(f"output '{name}': classification must be a positive integer")
        if k is not None and name in ("label", *DECISION_OUTPUTS):
            raise InvalidInput("output 'label': classification applies to probabilities, raw_probabilities "
                               "or logits")
        out.append(RequestedOutput(name, params.get("binary_data", binary_all) is True, k))
    return out


def _decision_tensor(batch: PredictionBatch, name: str) -> tuple[str, list[int], Any]:
    """prediction_set: an INT32 (n, K) membership mask; decision: BYTES (n,); expected_cost: FP64 (n,), NaN
    where the row abstained."""
    assert batch.served is not None  # only requested when asked (``_requested_outputs``)
    d = batch.served.decided
    if name == "prediction_set" and d.set_mask is not None:
        return "INT32", list(d.set_mask.shape), d.set_mask.astype("<i4")
    if name == "decision" and d.actions is not None:
        return "BYTES", [len(d.actions)], action_names(d.actions, batch.served.action_names)
    assert d.expected_cost is not None
    return "FP64", [len(d.expected_cost)], d.expected_cost.astype("<f8")


def _tensor(batch: PredictionBatch, out: RequestedOutput) -> tuple[str, list[int], Any]:
    n = len(batch.prediction_ids)
    classes = batch.classes
    if out.name in DECISION_OUTPUTS:
        return _decision_tensor(batch, out.name)
    if out.name == "label":
        return "BYTES", [n], [classes[int(k)] for k in batch.class_index]
    if out.name == "raw_probabilities":  # computed only when asked for
        values = batch.raw_probabilities()
    else:
        values = batch.probabilities if out.name == "probabilities" else batch.logits
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
    # Parameter values must be string, number or boolean (OIP), hence the comma-joined ids.
    response: dict[str, Any] = {
        "model_name": batch.loaded.name, "model_version": str(batch.loaded.version), "outputs": outputs,
        "parameters": {"calibrator_version": batch.serving.calibrator_version,
                       "calibration_method": batch.serving.method,
                       "prediction_ids": ",".join(batch.prediction_ids)},
    }
    if batch.served is not None:  # which versions decided (parameters: string, number or boolean)
        served = batch.served
        extra = {"coverage": served.ask.coverage, "conformal_version": served.conformal_version,
                 "min_confidence": served.ask.min_confidence, "cost_matrix_version": served.cost_matrix_version}
        response["parameters"].update({k: v for k, v in extra.items() if v is not None})
    if req.request_id is not None:
        response["id"] = req.request_id
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {}
    return header + b"".join(blobs), {"inference-header-content-length": str(len(header))}


def _bytes_blob(strings: list[str]) -> bytes:
    """BYTES tensors in binary form: each element is a 4-byte little-endian length, then its bytes."""
    parts = []
    for s in strings:
        b = s.encode()
        parts.append(struct.pack("<I", len(b)) + b)
    return b"".join(parts)
