"""Open Inference Protocol over HTTP: golden request/response files, readiness, and every bad input → 4xx."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_TOKEN, migrated_database
from tests.factories import softmax
from tests.testdata.tiny_models import TEMPERATURE, linear_logits, write_linear

GOLDEN = Path(__file__).resolve().parents[1] / "testdata" / "v2"
VOLATILE = "<volatile: one id per row, comma-joined>"


@pytest.fixture
def v2_client(settings: Settings, model_repository: Path) -> Iterator[TestClient]:
    write_linear(model_repository)  # the digits demo model plus the exact 4 → 3 "tiny" model
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_client(request: pytest.FixtureRequest, trained_repository: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app per database for the read-only cases below (bad input never changes state)."""
    root = tmp_path_factory.mktemp("v2")
    shutil.copytree(trained_repository, root / "models")
    write_linear(root / "models")
    with migrated_database(request.param, root) as url:
        settings = Settings(database_url=url, model_repository=root / "models", admin_token=ADMIN_TOKEN,
                            max_body_bytes=64 * 1024, log_flush_seconds=0.01)
        with TestClient(create_app(settings)) as c:
            yield c


def _golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())




# ---- golden files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case, status", [("infer_json", 200), ("infer_outputs", 200),
                                          ("infer_unknown_output", 400)])
def test_infer_matches_golden_files(shared_client: TestClient, case: str, status: int) -> None:
    response = shared_client.post("/v2/models/tiny/infer", content=(GOLDEN / f"{case}.request.json").read_bytes())
    assert response.status_code == status
    body, expected = response.json(), _golden(f"{case}.response.json")
    if status == 200:
        ids = body["parameters"]["prediction_ids"].split(",")
        assert len(ids) == body["outputs"][0]["shape"][0] and len(set(ids)) == len(ids)
        body["parameters"]["prediction_ids"] = VOLATILE
        for got, want in zip(body["outputs"], expected["outputs"], strict=True):
            if want["datatype"] == "FP32":  # float32 text may differ in the last digit across platforms
                np.testing.assert_allclose(got.pop("data"), want.pop("data"), rtol=1e-6)
    assert body == expected


def test_golden_numbers_are_the_calibrated_model_outputs() -> None:
    """The golden file is not a recording of itself: softmax(xW + b) / T computed independently."""
    request, response = _golden("infer_json.request.json"), _golden("infer_json.response.json")
    x = np.asarray(request["inputs"][0]["data"], dtype=np.float32)
    z = linear_logits(x)
    outputs = {o["name"]: o for o in response["outputs"]}
    np.testing.assert_allclose(outputs["logits"]["data"], z.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(outputs["probabilities"]["data"], softmax(z / TEMPERATURE).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(outputs["raw_probabilities"]["data"], softmax(z).reshape(-1), rtol=1e-6)
    assert outputs["label"]["data"] == [["cat", "dog", "bird"][k] for k in z.argmax(axis=1)]


@pytest.mark.parametrize("path, case", [("/v2", "server_metadata"), ("/v2/models/tiny", "model_metadata"),
                                        ("/v2/models/tiny/versions/1", "model_metadata")])
def test_metadata_matches_golden_files(shared_client: TestClient, path: str, case: str) -> None:
    response = shared_client.get(path)
    assert response.status_code == 200
    assert response.json() == _golden(f"{case}.response.json")


# ---- protocol details -----------------------------------------------------------------------------
def test_health_and_model_ready(shared_client: TestClient) -> None:
    assert shared_client.get("/v2/health/live").status_code == 200
    ready = shared_client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json()["models"]["tiny"]["versions"] == [1]
    assert shared_client.get("/v2/models/tiny/ready").json() == {"name": "tiny", "ready": True}
    assert shared_client.get("/v2/models/digits/versions/1/ready").status_code == 200


def test_binary_request_and_response(shared_client: TestClient) -> None:
    x = np.array([[1.0, 0.0, 0.5, -1.0]], dtype=np.float32)
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 16}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                                     {"name": "label", "parameters": {"binary_data": True}},
                                     {"name": "logits"}]}).encode()
    response = shared_client.post("/v2/models/tiny/infer", content=header + x.tobytes(),
                                  headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    n = int(response.headers["inference-header-content-length"])
    meta, blob = json.loads(response.content[:n]), response.content[n:]
    probs_size = meta["outputs"][0]["parameters"]["binary_data_size"]
    probs = np.frombuffer(blob[:probs_size], dtype="<f4")
    np.testing.assert_allclose(probs, softmax(linear_logits(x) / TEMPERATURE)[0], rtol=1e-6)
    label = blob[probs_size:]
    assert int.from_bytes(label[:4], "little") == 4 and label[4:] == b"bird"  # BYTES: <u32 length><bytes>
    assert "data" in meta["outputs"][2] and len(blob) == probs_size + 8


def test_gzip_request_body(shared_client: TestClient) -> None:
    body = gzip.compress((GOLDEN / "infer_json.request.json").read_bytes())
    response = shared_client.post("/v2/models/tiny/infer", content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json()["id"] == "golden-1"


def test_responses_name_the_calibrator_that_produced_them(v2_client: TestClient) -> None:
    body = v2_client.post("/v2/models/digits/infer", json={
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}],
        "parameters": {"tags": {"source": "test"}}}).json()
    assert body["parameters"]["calibrator_version"] == 1
    assert body["parameters"]["calibration_method"] == "temperature"
    assert all(isinstance(v, str | int | float | bool) for v in body["parameters"].values())


def test_dynamically_batched_model_answers_the_same(settings: Settings, model_repository: Path) -> None:
    (write_linear(model_repository).parent / "config.json").write_text(
        json.dumps({"dynamic_batching": {"max_batch_size": 16}}))
    with TestClient(create_app(settings)) as c:
        response = c.post("/v2/models/tiny/infer", content=(GOLDEN / "infer_json.request.json").read_bytes())
    assert response.status_code == 200
    expected = _golden("infer_json.response.json")["outputs"]
    for got, want in zip(response.json()["outputs"], expected, strict=True):
        if want["datatype"] == "FP32":
            np.testing.assert_allclose(got["data"], want["data"], rtol=1e-6)


def test_broken_version_is_reported_and_the_others_serve(settings: Settings, model_repository: Path) -> None:
    write_linear(model_repository)
    broken = write_linear(model_repository, version=2)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    with TestClient(create_app(settings)) as c:
        ready = c.get("/v2/health/ready")
        assert ready.status_code == 200
        assert "2" in ready.json()["models"]["tiny"]["errors"]
        meta = c.get("/v2/models/tiny").json()
        assert meta["versions"] == ["1"] and "2" in json.loads(meta["parameters"]["load_errors"])
        not_ready = c.get("/v2/models/tiny/versions/2/ready")
        assert not_ready.status_code == 400 and not_ready.json()["ready"] is False
        assert "failed to load" in not_ready.json()["error"]
        failed = c.post("/v2/models/tiny/versions/2/infer", content=(GOLDEN / "infer_json.request.json").read_bytes())
        assert failed.status_code == 503 and "version 2 failed to load" in failed.json()["error"]
        assert c.post("/v2/models/tiny/versions/1/infer",
                      content=(GOLDEN / "infer_json.request.json").read_bytes()).status_code == 200


# ---- bad input: a 4xx naming the problem, never a 500 ---------------------------------------------
def _tiny(data: Any = None, shape: Any = None, datatype: Any = "FP32", **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": [1, 4] if shape is None else shape, "datatype": datatype,
                        "data": [[1, 2, 3, 4]] if data is None else data}], **extra}


BAD_INPUT = [
    ("ragged", _tiny(data=[[1, 2, 3, 4], [1, 2]], shape=[2, 4]), 400, "ragged"),
    ("wrong_datatype", _tiny(datatype="INT64"), 400, "datatype 'INT64'; the model expects 'FP32'"),
    ("wrong_shape", _tiny(data=[1, 2, 3], shape=[1, 3]), 400, "has shape [1, 3]; the model expects [-1, 4]"),
    ("data_length", _tiny(data=[1, 2, 3, 4, 5, 6, 7], shape=[2, 4]), 400, "has 7 values but shape [2, 4] needs 8"),
    ("strings_in_data", _tiny(data=["a", "b", "c", "d"]), 400, "only numbers"),
    ("unknown_input", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
     400, "unknown input 'x'"),
    ("no_inputs", {"inputs": []}, 400, "non-empty 'inputs'"),
    ("unknown_output", _tiny(outputs=[{"name": "scores"}]), 400, "unknown output 'scores'"),
    ("bad_classification", _tiny(outputs=[{"name": "logits", "parameters": {"classification": 0}}]), 400,
     "classification must be a positive integer"),
]


@pytest.mark.parametrize("case, body, status, message", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_4xx_naming_the_problem(shared_client: TestClient, case: str, body: Any, status: int,
                                               message: str) -> None:
    response = shared_client.post("/v2/models/tiny/infer", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize("path, body, headers, status, message", [
    ("/v2/models/tiny/infer", b"{not json", {}, 400, "not valid JSON"),
    ("/v2/models/tiny/infer", b"", {}, 400, "empty"),
    ("/v2/models/tiny/infer", b"x" * (64 * 1024 + 1), {}, 413, "exceeds the limit of 65536 bytes"),
    ("/v2/models/tiny/infer", gzip.compress(b" " * (70 * 1024)), {"Content-Encoding": "gzip"}, 413,
     "decompressed request body exceeds"),
    ("/v2/models/tiny/infer", b"{}", {"Inference-Header-Content-Length": "99"}, 400,
     "Inference-Header-Content-Length"),
    ("/v2/models/nope/infer", b"{}", {}, 404, "model 'nope' is not loaded"),
    ("/v2/models/tiny/versions/7/infer", b"{}", {}, 404, "version 7 is not loaded"),
    ("/v2/models/tiny/versions/staging/infer", b"{}", {}, 404, "no version or alias 'staging'"),
], ids=["non_json", "empty", "too_large", "gzip_bomb", "bad_header_length", "unknown_model", "unknown_version",
        "unknown_alias"])
def test_bad_request_is_a_4xx_naming_the_problem(shared_client: TestClient, path: str, body: bytes,
                                                 headers: dict[str, str], status: int, message: str) -> None:
    response = shared_client.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_binary_size_mismatch_is_a_400(shared_client: TestClient) -> None:
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 12}}]}).encode()
    response = shared_client.post("/v2/models/tiny/infer", content=header + bytes(12),
                                  headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 400 and "binary_data_size 12 does not match" in response.json()["error"]


def test_nan_in_binary_input_is_a_400(shared_client: TestClient) -> None:
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    x = np.array([1.0, np.nan, 0.0, 0.0], dtype=np.float32)
    response = shared_client.post("/v2/models/tiny/infer", content=header + x.tobytes(),
                                  headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 400 and "NaN" in response.json()["error"]


def test_unknown_model_metadata_and_readiness_are_404(shared_client: TestClient) -> None:
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/tiny/versions/9"):
        response = shared_client.get(path)
        assert response.status_code == 404 and "error" in response.json()


def test_model_without_a_loadable_version_is_not_ready(settings: Settings, model_repository: Path) -> None:
    (write_linear(model_repository) / "card.json").write_text('{"name": "tiny"}')
    with TestClient(create_app(settings)) as c:
        response = c.post("/v2/models/tiny/infer", content=(GOLDEN / "infer_json.request.json").read_bytes())
        assert response.status_code == 503 and "no loadable version" in response.json()["error"]
        assert "ValidationError" in response.json()["error"]
        assert c.get("/v2/models/tiny/ready").status_code == 400


# ---- repository extension (admin) -----------------------------------------------------------------
def test_repository_extension_needs_the_admin_token(v2_client: TestClient) -> None:
    assert v2_client.post("/v2/repository/index").status_code == 401
    wrong = v2_client.post("/v2/repository/index", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and "not valid" in wrong.json()["error"]


def test_repository_index_load_and_unload(v2_client: TestClient, admin_headers: dict[str, str],
                                          model_repository: Path) -> None:
    write_linear(model_repository, version=2)  # on disk, not loaded yet
    index = v2_client.post("/v2/repository/index", headers=admin_headers).json()
    assert {"name": "tiny", "version": "2", "state": "UNAVAILABLE", "reason": "new on disk: not loaded yet"} in index
    ready_only = v2_client.post("/v2/repository/index", headers=admin_headers, json={"ready": True}).json()
    assert all(r["state"] == "READY" for r in ready_only)
    assert v2_client.post("/v2/repository/models/tiny/load", headers=admin_headers).status_code == 200
    assert v2_client.get("/v2/models/tiny").json()["versions"] == ["1", "2"]
    config = json.dumps({"version_policy": {"specific": [1]}})
    loaded = v2_client.post("/v2/repository/models/tiny/load", headers=admin_headers,
                            json={"parameters": {"config": config}})
    assert loaded.status_code == 200 and v2_client.get("/v2/models/tiny/versions/2/ready").status_code == 404
    assert v2_client.post("/v2/repository/models/tiny/unload", headers=admin_headers).status_code == 200
    assert v2_client.get("/v2/models/tiny/ready").status_code == 404
    audit = v2_client.get("/v1/admin/audit", headers=admin_headers).json()["entries"]
    assert [e["action"] for e in audit[:2]] == ["unload_model", "load_model"]


@pytest.mark.parametrize("path, body, status, message", [
    ("/v2/repository/models/tiny/load", {"parameters": {"config": "{bad"}}, 400, "not valid JSON"),
    ("/v2/repository/models/tiny/load", {"parameters": {"config": '{"version_policy": {"latest": 0}}'}}, 400,
     "positive integer"),
    ("/v2/repository/models/tiny/load", {"parameters": {"file:1/model.onnx": "AAAA"}}, 400,
     "file overrides are not supported"),
    ("/v2/repository/models/tiny/load", {"parameters": {"config": '{"version_policy": {"specific": [9]}}'}}, 400,
     "no loadable version"),
    ("/v2/repository/models/nope/load", None, 404, "not in the repository"),
    ("/v2/repository/models/nope/unload", None, 404, "is not loaded"),
    ("/v2/repository/index", [1], 400, "JSON object"),
], ids=["bad_json_config", "bad_policy", "file_override", "nothing_loadable", "unknown_load", "unknown_unload",
        "index_not_object"])
def test_repository_errors(shared_client: TestClient, admin_headers: dict[str, str], path: str, body: Any,
                           status: int, message: str) -> None:
    """None of these changes what is served (a reload that would leave nothing keeps the old entry)."""
    response = shared_client.post(path, headers=admin_headers, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert shared_client.get("/v2/models/tiny/versions/1/ready").status_code == 200
