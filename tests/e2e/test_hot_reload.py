"""Hot reload under load: load and unload a version, switch an alias and activate a calibrator while
client threads hammer the real server — every request succeeds, and every response's version fields
match its numbers (probabilities recomputed from the logits with the named calibrator's temperature)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from tests.conftest import ADMIN_TOKEN
from tests.e2e.server import running_server
from tests.factories import digits, softmax

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SCALE_V2 = 1.5  # version 2 = version 1's logits × 1.5, so a response's numbers reveal its model version
T_V2 = 0.8


def _make_version_2(model_dir: Path) -> None:
    """digits/2: the same graph with its logits scaled, and its own initial temperature."""
    v1, v2 = model_dir / "1", model_dir / "2"
    shutil.copytree(v1, v2)
    graph = onnx.load(str(v1 / "model.onnx"))
    last = graph.graph.node[-1]
    last.output[0] = "logits_v1"
    graph.graph.initializer.append(numpy_helper.from_array(np.array(SCALE_V2, dtype=np.float32), "scale"))
    graph.graph.node.append(helper.make_node("Mul", ["logits_v1", "scale"], ["logits"]))
    onnx.save(graph, str(v2 / "model.onnx"))
    card = json.loads((v2 / "card.json").read_text())
    card.update(version=2, onnx_sha256=None)
    (v2 / "card.json").write_text(json.dumps(card))
    (v2 / "calibrator.json").write_text(json.dumps({"method": "temperature", "params": {"temperature": T_V2}}))
    (model_dir / "config.json").write_text(json.dumps({"version_policy": {"specific": [1]}}))




class Load:
    """Client threads alternating /v1 predict (default alias) and /v2 infer (version 1, with logits)."""

    def __init__(self, base_url: str, rows: np.ndarray, threads: int = 4) -> None:
        self.base_url, self.rows = base_url, rows
        self.results: list[tuple[str, int, dict[str, Any], np.ndarray]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            while not self.stop.is_set():
                idx = rng.integers(0, len(self.rows), size=4)
                x = self.rows[idx]
                if rng.random() < 0.5:
                    r = http.post("/v1/models/digits/predict", json={"instances": x.tolist()})
                    self.results.append(("v1", r.status_code, r.json(), idx))
                else:
                    r = http.post("/v2/models/digits/versions/1/infer", json={
                        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                    "data": x.reshape(-1).tolist()}],
                        "outputs": [{"name": "probabilities"}, {"name": "logits"}]})
                    self.results.append(("v2", r.status_code, r.json(), idx))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _seen(load: Load, n: int, timeout: float = 10.0) -> None:
    """Let at least ``n`` more requests finish under the current state."""
    target = len(load.results) + n
    deadline = time.monotonic() + timeout
    while len(load.results) < target and time.monotonic() < deadline:
        time.sleep(0.01)


def test_hot_reload_under_load(database_url: str, model_repository: Path) -> None:
    model_dir = model_repository / "digits"
    _make_version_2(model_dir)
    x, y = digits()
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    z1 = session.run(["logits"], {"input": x.astype(np.float32)})[0].astype(np.float64)  # independent logits
    t_v1 = json.loads((model_dir / "1" / "calibrator.json").read_text())["params"]["temperature"]
    with running_server(database_url, model_repository, admin_token=ADMIN_TOKEN) as base, \
            httpx.Client(base_url=base, timeout=60) as http:
        # labels for version 1, then a second (inactive) calibrator version fitted from them
        body = http.post("/v1/models/digits/predict", json={"instances": x[:300].tolist()}).json()
        ids = [p["prediction_id"] for p in body["predictions"]]
        feedback = http.post("/v1/feedback", json={"items": [{"prediction_id": p, "label": int(v)}
                                                             for p, v in zip(ids, y[:300], strict=True)]})
        assert feedback.status_code == 200, feedback.text
        refit = http.post("/v1/admin/models/digits/versions/1/calibrators", headers=ADMIN, json={
            "method": "temperature", "activate": "never", "min_labels": 50, "min_per_class": 1})
        assert refit.status_code == 201, refit.text
        cv2 = refit.json()["calibrator_version"]
        temperatures = {(1, 1): t_v1, (1, cv2): refit.json()["params"]["temperature"], (2, 1): T_V2}

        with Load(base, x) as load:
            _seen(load, 40)
            r = http.post("/v2/repository/models/digits/load", headers=ADMIN,
                          json={"parameters": {"config": '{"version_policy": {"all": {}}}'}})
            assert r.status_code == 200, r.text
            _seen(load, 40)
            assert http.put("/v1/admin/models/digits/aliases/production", headers=ADMIN,
                            json={"version": 2}).status_code == 200
            _seen(load, 40)
            r = http.post(f"/v1/admin/models/digits/versions/1/calibrators/{cv2}/activate", headers=ADMIN)
            assert r.status_code == 200, r.text
            _seen(load, 40)
            assert http.put("/v1/admin/models/digits/aliases/production", headers=ADMIN,
                            json={"version": 1}).status_code == 200
            r = http.post("/v2/repository/models/digits/load", headers=ADMIN,
                          json={"parameters": {"config": '{"version_policy": {"specific": [1]}}'}})
            assert r.status_code == 200, r.text
            _seen(load, 40)

    failures = [(kind, status, body) for kind, status, body, _ in load.results if status != 200]
    assert not failures, failures[:3]
    seen: set[tuple[int, int]] = set()
    for kind, _, body, idx in load.results:
        if kind == "v1":
            version, cv = body["model_version"], body["calibrator_version"]
            probs = np.array([p["probabilities"] for p in body["predictions"]])
        else:
            version, cv = int(body["model_version"]), body["parameters"]["calibrator_version"]
            out = {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in body["outputs"]}
            probs = out["probabilities"]
            np.testing.assert_allclose(out["logits"], z1[idx], rtol=1e-4, atol=1e-4)
        seen.add((version, cv))
        logits = z1[idx] * (SCALE_V2 if version == 2 else 1.0)
        np.testing.assert_allclose(probs, softmax(logits / temperatures[(version, cv)]), atol=1e-5)
    assert {(1, 1), (1, cv2), (2, 1)} <= seen, seen
