"""The real ``tritonclient.http`` client, unchanged, against the real server on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import ADMIN_TOKEN, migrated_database
from tests.e2e.server import running_server
from tests.factories import softmax
from tests.testdata.tiny_models import TEMPERATURE, linear_logits, write_linear

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, trained_repository: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.InferenceServerClient]:
    root = tmp_path_factory.mktemp("triton")
    shutil.copytree(trained_repository, root / "models")
    write_linear(root / "models")
    with migrated_database(request.param, root) as url, \
            running_server(url, root / "models", admin_token=ADMIN_TOKEN) as base_url:
        c = triton.InferenceServerClient(base_url.removeprefix("http://"))
        yield c
        c.close()




X = np.array([[1.0, 0.0, 0.5, -1.0], [0.25, 1.5, -2.0, 0.0], [3.0, -1.0, 0.0, 2.0]], dtype=np.float32)


def _input(binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary)
    return tensor


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "calibserve" and "calibration" in server["extensions"]
    meta = client.get_model_metadata("tiny")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "raw_probabilities", "logits", "label"]
    assert client.get_model_metadata("digits", "1")["versions"] == ["1"]
    assert client.is_model_ready("tiny") and client.is_model_ready("digits", "1")
    assert not client.is_model_ready("tiny", "9")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_all_outputs(client: triton.InferenceServerClient, binary: bool) -> None:
    """No outputs named: tritonclient asks for ``binary_data_output`` when binary inputs are used."""
    result = client.infer("tiny", [_input(binary)], request_id="abc")
    z = linear_logits(X)
    np.testing.assert_allclose(result.as_numpy("logits"), z, rtol=1e-6)
    np.testing.assert_allclose(result.as_numpy("probabilities"), softmax(z / TEMPERATURE), rtol=1e-5)
    np.testing.assert_allclose(result.as_numpy("raw_probabilities"), softmax(z), rtol=1e-5)
    labels = [s.decode() if isinstance(s, bytes) else s for s in result.as_numpy("label")]
    assert labels == [["cat", "dog", "bird"][k] for k in z.argmax(axis=1)]
    response = result.get_response()
    assert response["id"] == "abc" and response["model_version"] == "1"
    params = response["parameters"]
    assert params["calibrator_version"] == 1 and params["calibration_method"] == "temperature"
    assert len(params["prediction_ids"].split(",")) == len(X)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_output_selection_and_classification(client: triton.InferenceServerClient, binary: bool) -> None:
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary),
               triton.InferRequestedOutput("raw_probabilities", binary_data=binary, class_count=2)]
    result = client.infer("tiny", [_input(binary)], outputs=outputs)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities", "raw_probabilities"]
    assert result.as_numpy("logits") is None
    top = result.as_numpy("raw_probabilities")
    raw = softmax(linear_logits(X))
    assert top.shape == (3, 2)
    for i, row in enumerate(top):
        value, index, label = (row[0].decode() if isinstance(row[0], bytes) else row[0]).split(":")
        assert int(index) == raw[i].argmax() and label == ["cat", "dog", "bird"][int(index)]
        assert float(value) == pytest.approx(raw[i].max(), abs=1e-6)


def test_digits_with_compressed_request(client: triton.InferenceServerClient) -> None:
    x = np.random.default_rng(0).uniform(0, 16, size=(64, 64)).astype(np.float32)
    tensor = triton.InferInput("input", [64, 64], "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    result = client.infer("digits", [tensor], outputs=[triton.InferRequestedOutput("probabilities")],
                          request_compression_algorithm="gzip")
    probs = result.as_numpy("probabilities")
    assert probs.shape == (64, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_errors_raise_inference_server_exception_with_our_message(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="model 'nope' is not loaded") as info:
        client.infer("nope", [_input(False)])
    assert info.value.status() == "404"
    bad = triton.InferInput("input", [3, 4], "FP64")
    bad.set_data_from_numpy(X.astype(np.float64))
    with pytest.raises(InferenceServerException, match="datatype 'FP64'; the model expects 'FP32'"):
        client.infer("tiny", [bad])
    with pytest.raises(InferenceServerException, match="unknown output 'scores'"):
        client.infer("tiny", [_input(True)], outputs=[triton.InferRequestedOutput("scores")])


def test_repository_extension(client: triton.InferenceServerClient) -> None:
    index = client.get_model_repository_index(headers=ADMIN)
    assert {"name": "tiny", "version": "1", "state": "READY", "reason": ""} in index
    with pytest.raises(InferenceServerException, match="Bearer"):
        client.get_model_repository_index()
    client.unload_model("tiny", headers=ADMIN)
    assert not client.is_model_ready("tiny")
    with pytest.raises(InferenceServerException, match="not loaded"):
        client.infer("tiny", [_input(False)])
    client.load_model("tiny", headers=ADMIN, config='{"version_policy": {"latest": {"num_versions": 1}}}')
    assert client.is_model_ready("tiny", "1")
    with pytest.raises(InferenceServerException, match="not in the repository"):
        client.load_model("nope", headers=ADMIN)
