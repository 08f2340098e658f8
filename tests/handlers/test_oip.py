"""The Open Inference Protocol codec on its own: request parsing, response rendering, decompression."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import orjson
import pytest

from service.calibration import make_calibrator
from service.errors import InvalidInput, PayloadTooLarge
from service.handlers import oip
from service.handlers.predictor import PredictionBatch
from service.repository.loaded import ActiveCalibration, LoadedVersion
from service.repository.registry import load_version
from tests.testdata.tiny_models import linear_logits, write_linear


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedVersion:
    return load_version(write_linear(tmp_path_factory.mktemp("repo")))


def _request(**fields: object) -> bytes:
    body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [0, 0, 0, 1]]}]}
    return json.dumps({**body, **fields}).encode()


def _batch(loaded: LoadedVersion, rows: np.ndarray) -> PredictionBatch:
    z = linear_logits(rows)
    calibrator = make_calibrator("identity")
    probs = calibrator.predict_proba(z)
    k = probs.argmax(axis=1)
    return PredictionBatch(loaded, ActiveCalibration(3, "identity", calibrator), z, probs, k,
                           probs[np.arange(len(k)), k], [f"id{i}" for i in range(len(k))])


def test_nested_and_flat_data_parse_to_the_same_rows(tiny: LoadedVersion) -> None:
    nested = oip.parse_request(_request(), None, tiny)
    flat = oip.parse_request(json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                                     "data": [1, 2, 3, 4, 0, 0, 0, 1]}]}).encode(), None, tiny)
    np.testing.assert_array_equal(nested.rows, flat.rows)
    assert nested.rows.shape == (2, 4) and [o.name for o in nested.outputs] == list(oip.OUTPUTS)


def test_binary_input_is_read_after_the_json_header(tiny: LoadedVersion) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    header = json.dumps({"id": "7", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                                "parameters": {"binary_data_size": 32}}],
                         "parameters": {"binary_data_output": True}}).encode()
    parsed = oip.parse_request(header + x.tobytes(), str(len(header)), tiny)
    np.testing.assert_array_equal(parsed.rows, x)
    assert parsed.request_id == "7" and all(o.binary for o in parsed.outputs)


def test_tags_may_be_an_object_or_a_json_string(tiny: LoadedVersion) -> None:
    assert oip.parse_request(_request(parameters={"tags": {"a": 1}}), None, tiny).tags == {"a": 1}
    assert oip.parse_request(_request(parameters={"tags": '{"a": 1}'}), None, tiny).tags == {"a": 1}
    with pytest.raises(InvalidInput, match="tags"):
        oip.parse_request(_request(parameters={"tags": [1]}), None, tiny)


def test_render_json_response(tiny: LoadedVersion) -> None:
    rows = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], dtype=np.float32)
    parsed = oip.parse_request(_request(id="r1"), None, tiny)
    content, headers = oip.render_response(_batch(tiny, rows), parsed)
    body = orjson.loads(content)
    assert headers == {} and body["id"] == "r1" and body["model_version"] == "1"
    assert body["parameters"] == {"calibrator_version": 3, "calibration_method": "identity",
                                  "prediction_ids": "id0,id1"}
    logits = next(o for o in body["outputs"] if o["name"] == "logits")
    np.testing.assert_allclose(logits["data"], linear_logits(rows).reshape(-1), rtol=1e-6)


def test_render_binary_and_classification(tiny: LoadedVersion) -> None:
    rows = np.array([[1, 2, 3, 4]], dtype=np.float32)
    outputs = [{"name": "probabilities", "parameters": {"binary_data": True}},
               {"name": "logits", "parameters": {"classification": 2, "binary_data": True}}]
    parsed = oip.parse_request(json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                                       "data": [1, 2, 3, 4]}], "outputs": outputs}).encode(),
                               None, tiny)
    content, headers = oip.render_response(_batch(tiny, rows), parsed)
    n = int(headers["inference-header-content-length"])
    meta, blob = orjson.loads(content[:n]), content[n:]
    assert [o["parameters"]["binary_data_size"] for o in meta["outputs"]][0] == 12
    z = linear_logits(rows)[0]
    order = np.argsort(-z)[:2]
    strings, offset = [], 12
    while offset < len(blob):  # BYTES elements: <u32 little-endian length><utf-8 bytes>
        (size,) = struct.unpack_from("<I", blob, offset)
        strings.append(blob[offset + 4: offset + 4 + size].decode())
        offset += 4 + size
    assert strings == [f"{z[j]:.6f}:{j}:{['cat', 'dog', 'bird'][j]}" for j in order]
    assert meta["outputs"][1]["shape"] == [1, 2] and meta["outputs"][1]["datatype"] == "BYTES"


def test_decompress_gzip_and_deflate_within_the_limit() -> None:
    raw = b'{"inputs": []}' * 10
    assert oip.decompress(gzip.compress(raw), "gzip", 1000) == raw
    assert oip.decompress(zlib.compress(raw), "deflate", 1000) == raw
    assert oip.decompress(raw, None, 1000) == raw
    with pytest.raises(PayloadTooLarge):
        oip.decompress(gzip.compress(bytes(2000)), "gzip", 1000)
    with pytest.raises(InvalidInput, match="not valid gzip"):
        oip.decompress(b"plain", "gzip", 1000)
    with pytest.raises(InvalidInput, match="unsupported Content-Encoding 'br'"):
        oip.decompress(raw, "br", 1000)


@pytest.mark.parametrize("fields, message", [
    ({"parameters": []}, "'parameters' must be a JSON object"),
    ({"outputs": {"name": "logits"}}, "'outputs' must be a list"),
    ({"outputs": [{"name": "label", "parameters": {"classification": 1}}]}, "classification applies to"),
    ({"outputs": [{"name": "logits", "parameters": "x"}]}, "'parameters' must be a JSON object"),
])
def test_bad_request_fields(tiny: LoadedVersion, fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        oip.parse_request(_request(**fields), None, tiny)


def test_two_inputs_are_refused(tiny: LoadedVersion, tmp_path: Path) -> None:
    spec = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    with pytest.raises(InvalidInput, match="exactly one input"):
        oip.parse_request(json.dumps({"inputs": [spec, spec]}).encode(), None, tiny)
