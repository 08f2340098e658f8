"""bench/serve/model.py: the bench model as calibserve serves it (through its real app, on SQLite and
PostgreSQL) is scikit-learn's LogisticRegression with the temperature calibrator applied, and every bench
body file is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
from fastapi.testclient import TestClient
from scipy.special import softmax

from bench.serve.bodies import write_bodies
from bench.serve.model import BenchModel
from service.app import create_app
from service.settings import Settings


def test_calibserve_serves_the_sklearn_model_with_its_temperature(bench_model: BenchModel, database_url: str,
                                                                   tmp_path: Path) -> None:
    clf = joblib.load(bench_model.joblib_dir / "model.joblib")
    calibrator = json.loads((bench_model.onnx.parent / "calibrator.json").read_text())
    assert calibrator["method"] == "temperature" and calibrator["params"]["temperature"] == bench_model.temperature
    bodies = write_bodies(tmp_path, bench_model.rows, (1, 64))
    x = np.resize(bench_model.rows, (64, 64))
    expected = softmax(np.log(clf.predict_proba(x)) / bench_model.temperature, axis=1)
    settings = Settings(database_url=database_url, model_repository=bench_model.repository)
    with TestClient(create_app(settings)) as client:
        for kind, path in (("v2", "/v2/models/digits/infer"), ("v2-binary", "/v2/models/digits/infer"),
                           ("v1", "/v1/models/digits/predict")):
            file, content_type, header_length = bodies[kind][64]
            headers = {"Content-Type": content_type}
            if header_length:
                headers["Inference-Header-Content-Length"] = header_length
            response = client.post(path, content=file.read_bytes(), headers=headers)
            assert response.status_code == 200, response.text
        response = client.post("/v2/models/digits/infer", content=bodies["v2"][64][0].read_bytes())
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert set(outputs) == {"probabilities", "label"}
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (64, 10)), expected, atol=1e-5)
    assert outputs["label"]["data"] == [str(c) for c in clf.predict(x)]


def test_mlserver_body_asks_for_probabilities_and_class(bench_model: BenchModel, tmp_path: Path) -> None:
    body = json.loads(write_bodies(tmp_path, bench_model.rows, (1,))["v2-mlserver"][1][0].read_text())
    assert [o["name"] for o in body["outputs"]] == ["predict_proba", "predict"]
    assert body["inputs"][0]["shape"] == [1, 64] and len(body["inputs"][0]["data"]) == 64
