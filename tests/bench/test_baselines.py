"""bench/baseline_asgi.py (a) and bench/baseline_app.py (b): the hand-written endpoints answer the V2 body
the bench sends with scikit-learn's own probabilities and labels, and a bad body with a 400."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import joblib
import numpy as np
import pytest
from starlette.testclient import TestClient

from bench.serve.bodies import write_bodies
from bench.serve.model import BenchModel

BASELINES = ["bench.baseline_asgi", "bench.baseline_app"]


@pytest.mark.parametrize("baseline_module", BASELINES, indirect=True)
def test_answers_with_sklearn_probabilities(baseline_module: ModuleType, bench_model: BenchModel) -> None:
    clf = joblib.load(bench_model.joblib_dir / "model.joblib")
    x = bench_model.rows[:3]
    body = {"inputs": [{"name": "input", "shape": [3, 64], "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    with TestClient(baseline_module.app) as client:
        assert client.get("/health").json() == {"ok": True}
        response = client.post("/v2/models/digits/infer", content=json.dumps(body))
    assert response.status_code == 200
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["label"]["data"] == clf.predict(x).tolist()
    assert outputs["probabilities"]["shape"] == [3, 10]
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (3, 10)), clf.predict_proba(x),
                               atol=1e-5)


@pytest.mark.parametrize("baseline_module", BASELINES, indirect=True)
def test_bench_body_files_are_accepted(baseline_module: ModuleType, bench_model: BenchModel, tmp_path: Path) -> None:
    bodies = write_bodies(tmp_path, bench_model.rows, (1, 64))
    with TestClient(baseline_module.app) as client:
        for batch in (1, 64):
            response = client.post("/v2/models/digits/infer", content=bodies["v2"][batch][0].read_bytes())
            assert response.status_code == 200
            assert len(response.json()["outputs"][0]["data"]) == batch


@pytest.mark.parametrize("baseline_module", BASELINES, indirect=True)
@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"inputs": [{"shape": [1, 3], "data": [1, 2, 3]}]}'])
def test_bad_body_is_a_400_with_an_error(baseline_module: ModuleType, body: bytes) -> None:
    with TestClient(baseline_module.app) as client:
        response = client.post("/v2/models/digits/infer", content=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request")
