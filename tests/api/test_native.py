"""Native predict: calibrated probabilities equal the stored calibrator applied to the ONNX logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.factories import digits, predict


def _independent_probabilities(model_dir: Path, rows: np.ndarray) -> np.ndarray:
    """onnxruntime directly + numpy softmax(z / T) from calibrator.json: no service code involved."""
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": rows.astype(np.float32)})
    spec = json.loads((model_dir / "calibrator.json").read_text())
    assert spec["method"] == "temperature"
    z = logits.astype(np.float64) / spec["params"]["temperature"]
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_predict_returns_calibrated_probabilities(client, model_repository: Path) -> None:
    x, _ = digits()
    body = predict(client, x[:50])
    assert body["model"] == "digits" and body["model_version"] == 1
    assert body["calibrator_version"] == 1 and body["calibration_method"] == "temperature"
    probs = np.array([p["probabilities"] for p in body["predictions"]])
    expected = _independent_probabilities(model_repository / "digits" / "1", x[:50])
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    for p, row in zip(body["predictions"], expected, strict=True):
        assert p["class_index"] == int(row.argmax())
        assert p["label"] == body["classes"][p["class_index"]]
        assert p["confidence"] == pytest.approx(row.max(), abs=1e-6)
    assert len({p["prediction_id"] for p in body["predictions"]}) == 50


def test_predict_by_version_top_k_and_tags(client) -> None:
    x, _ = digits()
    body = predict(client, x[:3], path="/v1/models/digits/versions/1/predict", top_k=3, tags={"source": "t"})
    for p in body["predictions"]:
        top = p["top_k"]
        assert len(top) == 3 and top[0]["class_index"] == p["class_index"]
        assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]


def test_alias_resolves_to_version(client, admin_headers) -> None:
    r = client.put("/v1/admin/models/digits/aliases/production", json={"version": 1}, headers=admin_headers)
    assert r.status_code == 200, r.text
    x, _ = digits()
    assert predict(client, x[:1], path="/v1/models/digits/versions/production/predict")["model_version"] == 1
    r = client.post("/v1/models/digits/versions/staging/predict", json={"instances": x[:1].tolist()})
    assert r.status_code == 404 and "staging" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"instances": [[1.0, 2.0]]}, 400, "needs 64 features, got 2"),
        ({"instances": [[0.0] * 63, [0.0] * 64]}, 400, "ragged"),
        ({"instances": [["a"] * 64]}, 400, "only numbers"),
        ({"instances": [[True] * 64]}, 400, "only numbers"),
        ({"instances": [[None] * 64]}, 400, "only numbers"),
        ({"instances": []}, 400, "non-empty"),
        ({"rows": [[0.0] * 64]}, 400, "instances"),
        ({"instances": [[0.0] * 64], "top_k": 11}, 400, "top_k"),
        ({"instances": [[0.0] * 64], "tags": [1]}, 400, "tags"),
    ],
)
def test_bad_input_is_a_clear_4xx(client, body, status, fragment) -> None:
    r = client.post("/v1/models/digits/predict", json=body)
    assert r.status_code == status
    assert fragment in r.json()["error"]


def test_nan_inf_and_non_json(client) -> None:
    row = ",".join(["0"] * 63)
    for token in ("NaN", "Infinity", "1e999"):
        r = client.post("/v1/models/digits/predict", content=f'{{"instances": [[{row},{token}]]}}')
        assert r.status_code == 400, token
        assert "JSON" in r.json()["error"] or "NaN or infinity" in r.json()["error"]
    r = client.post("/v1/models/digits/predict", content=b"not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]


def test_unknown_model_and_version(client) -> None:
    x, _ = digits()
    r = client.post("/v1/models/nope/predict", json={"instances": x[:1].tolist()})
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = client.post("/v1/models/digits/versions/7/predict", json={"instances": x[:1].tolist()})
    assert r.status_code == 404 and "version 7" in r.json()["error"]


def test_oversized_body_is_413(settings, model_repository) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app

    small = settings.model_copy(update={"max_body_bytes": 1000})
    with TestClient(create_app(small)) as c:
        r = c.post("/v1/models/digits/predict", json={"instances": [[0.0] * 64] * 20})
        assert r.status_code == 413 and "limit of 1000 bytes" in r.json()["error"]


def test_list_models(client) -> None:
    body = client.get("/v1/models").json()
    (digits_model,) = body["models"]
    assert digits_model["name"] == "digits"
    assert digits_model["versions"][0]["calibration_method"] == "temperature"
    assert digits_model["versions"][0]["loss"]["name"] == "flsd53"


def test_failed_requests_are_counted_once_with_the_resolved_version(client) -> None:
    client.post("/v1/models/digits/predict", json={"instances": [[1.0]]})
    metrics = client.get("/metrics").text
    assert 'calibserve_requests_total{code="400",endpoint="v1_predict",model="digits",version="1"} 1.0' in metrics


def test_unknown_model_names_share_one_label_value(client) -> None:
    """Before: every invented model name on /v1 became its own label series (unbounded cardinality)."""
    for i in range(25):
        assert client.post(f"/v1/models/nope{i}/predict", json={"instances": [[1.0]]}).status_code == 404
    metrics = client.get("/metrics").text
    assert "nope" not in metrics
    assert 'calibserve_requests_total{code="404",endpoint="v1_predict",model="unknown",version=""} 25.0' in metrics
