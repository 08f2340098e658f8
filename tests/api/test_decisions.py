"""Sets and decisions over HTTP, on SQLite and PostgreSQL: ``coverage`` → ``prediction_set``, ``min_confidence``
→ abstain, an admin cost matrix → Bayes action with expected cost, the versions that decided, bad input as
clear 4xx, and the online figures (window JSON, Prometheus) from feedback.

Every expected number is recomputed here from the response's own probabilities and the stored files with
plain numpy (the conformal quantile by its definition, the Bayes risk as an explicit product), not by calling
the service's functions."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.factories import digits, ids_of, post_labels, predict

COST_URL = "/v1/admin/models/digits/cost-matrix"
CLASSES = [str(d) for d in range(10)]
# approve a digit (10 actions: cost 0 if right, 1 if wrong) or send it to review at a flat 0.2
COSTS = [[0.0 if a == k else 1.0 for k in range(10)] for a in range(10)] + [[0.2] * 10]
ACTIONS = [f"say_{d}" for d in range(10)] + ["review"]


def lac_sets(probs: np.ndarray, conformal_file: Path, coverage: float) -> np.ndarray:
    """The LAC set by its definition: q̂ = the ⌈(n+1)·coverage⌉-th smallest stored score; {y : 1 − p_y ≤ q̂}."""
    params = json.loads(conformal_file.read_text())["params"]
    assert params["score"] == "lac" and not params["mondrian"]
    scores = np.sort(np.asarray(params["scores"][0]))
    k = math.ceil(round((len(scores) + 1) * coverage, 9))
    q = scores[k - 1] if k <= len(scores) else np.inf
    out: np.ndarray = (1.0 - probs) <= q + 1e-8
    return out


def set_cost_matrix(client: Any, admin_headers: dict[str, str], matrix: Any = COSTS,
                    actions: Any = ACTIONS) -> dict[str, Any]:
    r = client.put(COST_URL, json={"matrix": matrix, "actions": actions}, headers=admin_headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_coverage_returns_the_conformal_set(client: Any, model_repository: Path) -> None:
    x, _ = digits()
    body = predict(client, x[:64], coverage=0.9)
    assert body["coverage"] == 0.9 and body["conformal_version"] == 1 and body["calibrator_version"] == 1
    probs = np.array([p["probabilities"] for p in body["predictions"]])
    expected = lac_sets(probs, model_repository / "digits" / "1" / "conformal.json", 0.9)
    got = [p["prediction_set"] for p in body["predictions"]]
    assert got == [[CLASSES[k] for k in np.flatnonzero(row)] for row in expected]
    assert all("decision" not in p for p in body["predictions"])
    plain = predict(client, x[:2])
    assert "coverage" not in plain and "prediction_set" not in plain["predictions"][0]


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, "0.9", True])
def test_coverage_outside_the_open_interval_is_a_400(client: Any, bad: Any) -> None:
    x, _ = digits()
    r = client.post("/v1/models/digits/predict", json={"instances": x[:1].tolist(), "coverage": bad})
    assert r.status_code == 400 and r.json() == {
        "error": f"coverage must be a number strictly between 0 and 1; got {bad!r}"}


def test_a_set_from_a_version_without_conformal_calibrator_is_a_409(settings: Settings,
                                                                       model_repository: Path) -> None:
    (model_repository / "digits" / "1" / "conformal.json").unlink()
    with TestClient(create_app(settings)) as client:
        x, _ = digits()
        r = client.post("/v1/models/digits/predict", json={"instances": x[:1].tolist(), "coverage": 0.9})
        assert r.status_code == 409 and "has no conformal calibrator" in r.json()["error"]
        assert predict(client, x[:1])["predictions"][0]["label"]  # plain predictions still work


def test_cost_matrix_decisions_and_abstention(client: Any, admin_headers: dict[str, str]) -> None:
    x, _ = digits()
    r = client.post("/v1/models/digits/predict", json={"instances": x[:1].tolist(), "decision": True})
    assert r.status_code == 409 and "has no active cost matrix" in r.json()["error"]

    stored = set_cost_matrix(client, admin_headers)
    assert stored["cost_matrix_version"] == 1 and stored["actions"] == ACTIONS and stored["state"] == "active"
    body = predict(client, x[:64], decision=True, min_confidence=0.6)
    assert body["cost_matrix_version"] == 1 and body["min_confidence"] == 0.6
    probs = np.array([p["probabilities"] for p in body["predictions"]])
    risk = probs @ np.array(COSTS).T  # R[i, a] = Σ_k p_ik C[a, k]
    for i, p in enumerate(body["predictions"]):
        if probs[i].max() < 0.6:
            assert p["decision"] == "abstain" and p["expected_cost"] is None
        else:
            assert p["decision"] == ACTIONS[int(np.argmin(risk[i]))]
            assert p["expected_cost"] == pytest.approx(risk[i].min(), abs=1e-6)
    only_abstain = predict(client, x[:8], min_confidence=0.99)
    assert only_abstain["cost_matrix_version"] is None
    assert {p["decision"] for p in only_abstain["predictions"]} <= {"abstain", *CLASSES}

    second = set_cost_matrix(client, admin_headers, matrix=COSTS[:10], actions=None)  # names default: classes
    assert second["cost_matrix_version"] == 2 and second["actions"] == CLASSES
    assert predict(client, x[:1], decision=True)["cost_matrix_version"] == 2
    r = client.post("/v1/admin/models/digits/cost-matrices/1/activate", headers=admin_headers)
    assert r.status_code == 200 and r.json()["cost_matrix_version"] == 1
    assert predict(client, x[:1], decision=True)["cost_matrix_version"] == 1
    history = client.get("/v1/admin/models/digits/cost-matrices", headers=admin_headers).json()["cost_matrices"]
    assert [(c["cost_matrix_version"], c["state"]) for c in history] == [(1, "active"), (2, "retired")]
    audit = client.get("/v1/admin/audit", headers=admin_headers).json()["entries"]
    assert [e["action"] for e in audit[:3]] == ["activate_cost_matrix", "set_cost_matrix", "set_cost_matrix"]


@pytest.mark.parametrize(("body", "message"), [
    ({"matrix": [[0, 1], [1, 0]]}, r"cost matrix must have shape (actions, 10)"),
    ({"matrix": [[0] * 10, [1] * 9]}, "rectangular"),
    ({"matrix": [[-1] + [0] * 9]}, "non-negative"),
    ({"matrix": COSTS, "actions": ["a"] * 11}, "action names must be distinct"),
    ({"matrix": COSTS, "actions": ACTIONS[:3]}, "cost matrix has 11 rows but 3 action names"),
    ({"costs": COSTS}, 'the body must be {"matrix"'),
])
def test_bad_cost_matrices_are_a_400(client: Any, admin_headers: dict[str, str], body: Any, message: str) -> None:
    r = client.put(COST_URL, json=body, headers=admin_headers)
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_non_finite_cost_and_unknown_version(client: Any, admin_headers: dict[str, str]) -> None:
    r = client.put(COST_URL, content=b'{"matrix": [[1e999, 0, 0, 0, 0, 0, 0, 0, 0, 0]]}', headers=admin_headers)
    assert r.status_code == 400 and "infinity" in r.json()["error"]
    r = client.post("/v1/admin/models/digits/cost-matrices/7/activate", headers=admin_headers)
    assert r.status_code == 404 and r.json() == {"error": "model 'digits' has no cost matrix version 7"}
    r = client.put("/v1/admin/models/nope/cost-matrix", json={"matrix": COSTS}, headers=admin_headers)
    assert r.status_code == 404
    assert client.put(COST_URL, json={"matrix": COSTS}).status_code == 401


def test_feedback_reaches_the_window_json_and_prometheus(client: Any, admin_headers: dict[str, str]) -> None:
    set_cost_matrix(client, admin_headers)
    x, y = digits()
    n = 300
    body = predict(client, x[:n], coverage=0.9, decision=True, min_confidence=0.5)
    post_labels(client, ids_of(body), [int(v) for v in y[:n]])
    preds = body["predictions"]
    covered = np.mean([CLASSES[int(y[i])] in p["prediction_set"] for i, p in enumerate(preds)])
    sizes = np.mean([len(p["prediction_set"]) for p in preds])
    acted = [i for i, p in enumerate(preds) if p["decision"] != "abstain"]
    realised = np.mean([COSTS[ACTIONS.index(preds[i]["decision"])][int(y[i])] for i in acted])
    expected = np.mean([preds[i]["expected_cost"] for i in acted])

    window = client.get("/v1/models/digits/versions/1/calibration?window=1h").json()["decisions"]
    (sets,) = window["conformal"]
    assert sets["conformal_version"] == 1 and sets["target_coverage"] == 0.9 and sets["labelled"] == n
    assert sets["realised_coverage"] == pytest.approx(covered) and sets["mean_set_size"] == pytest.approx(sizes)
    assert sets["coverage_ci"][0] <= covered <= sets["coverage_ci"][1]
    assert sets["false_alarm_rate"] == 0.01 and isinstance(sets["alarm"], bool)
    (decided,) = window["decisions"]
    assert decided["cost_matrix_version"] == 1 and decided["min_confidence"] == 0.5
    assert decided["abstention_rate"] == pytest.approx(1 - len(acted) / n)
    assert decided["realised_cost"] == pytest.approx(realised) and decided["expected_cost"] == pytest.approx(expected)
    assert window["selective"]["auarc"] > 0.9

    labels = '{calibrator="1",model="digits",version="1"}'
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:  # the background loop refreshes the window gauges
        text = client.get("/metrics").text
        if f"calibserve_conformal_coverage_alarm{labels}" in text:
            break
        time.sleep(0.2)
    assert f"calibserve_conformal_labelled_total{labels} {float(n)}" in text
    assert f"calibserve_conformal_covered_total{labels} {float(round(covered * n))}" in text
    assert f"calibserve_decision_costed_total{labels} {float(len(acted))}" in text
    assert f"calibserve_conformal_coverage_alarm{labels}" in text


def test_v2_parameters_and_output_tensors(client: Any, admin_headers: dict[str, str],
                                          model_repository: Path) -> None:
    set_cost_matrix(client, admin_headers)
    x, _ = digits()
    request = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [8, 64], "data": x[:8].tolist()}],
               "parameters": {"coverage": 0.9, "decision": True}}
    r = client.post("/v2/models/digits/infer", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert body["parameters"]["conformal_version"] == 1 and body["parameters"]["cost_matrix_version"] == 1
    probs = np.array(outputs["probabilities"]["data"]).reshape(8, 10)
    mask = outputs["prediction_set"]
    assert mask["datatype"] == "INT32" and mask["shape"] == [8, 10]
    expected = lac_sets(probs, model_repository / "digits" / "1" / "conformal.json", 0.9)
    assert np.array_equal(np.array(mask["data"]).reshape(8, 10).astype(bool), expected)
    assert outputs["decision"]["datatype"] == "BYTES" and len(outputs["decision"]["data"]) == 8
    risk = probs @ np.array(COSTS).T
    assert outputs["decision"]["data"] == [ACTIONS[int(a)] for a in risk.argmin(axis=1)]
    assert np.allclose(outputs["expected_cost"]["data"], risk.min(axis=1), atol=1e-5)

    asked = {**request, "parameters": {}, "outputs": [{"name": "prediction_set"}]}
    r = client.post("/v2/models/digits/infer", json=asked)
    assert r.status_code == 400 and r.json() == {
        "error": "output 'prediction_set' needs the request parameter 'coverage'"}
    r = client.post("/v2/models/digits/infer", json={**request, "parameters": {"coverage": 2}})
    assert r.status_code == 400 and "coverage must be a number strictly between 0 and 1" in r.json()["error"]


def test_refit_fits_and_serves_a_new_conformal_calibrator(client: Any, admin_headers: dict[str, str]) -> None:
    x, y = digits()
    post_labels(client, ids_of(predict(client, x[:600])), [int(v) for v in y[:600]])
    r = client.post("/v1/admin/models/digits/versions/1/calibrators",
                    json={"method": "temperature", "activate": "always", "conformal": "aps"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["calibrator_version"] == 2 and result["conformal_version"] == 2
    assert set(result["evaluation"]["conformal"]["sets"]) == {"0.8", "0.9", "0.95"}
    body = predict(client, x[:4], coverage=0.9)
    assert body["calibrator_version"] == 2 and body["conformal_version"] == 2
    assert all(len(p["prediction_set"]) >= 1 for p in body["predictions"])  # APS sets are never empty
    r = client.post("/v1/admin/models/digits/versions/1/calibrators",
                    json={"conformal": "raps"}, headers=admin_headers)
    assert r.status_code == 400 and "conformal" in r.json()["error"]
