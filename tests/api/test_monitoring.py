"""HTTP surface of monitoring: the calibration query's bad input, its shape, calibrator history, /metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.settings import Settings
from tests.factories import digits, ids_of, post_labels, predict

PATH = "/v1/models/digits/versions/1/calibration"
NOW = datetime.now(UTC)
FUTURE = (NOW + timedelta(hours=1)).isoformat()
PAST, EARLIER = (NOW - timedelta(hours=2)).isoformat(), (NOW - timedelta(hours=3)).isoformat()

BAD = [
    ({"window": "abc"}, "is not a duration"),
    ({"window": "0m"}, "is not a duration"),
    ({"window": "1y"}, "is not a duration"),
    ({"end": FUTURE}, "into the future"),
    ({"start": PAST, "end": EARLIER}, "window is empty"),
    ({"start": "last tuesday"}, "not an ISO 8601"),
    ({"bins": 7}, "bins must divide 300"),
    ({"bins": 0}, "bins must divide 300"),
    ({"bins": "many"}, "bins"),
    ({"rule": "nannyml"}, "rule must be one of ci, sigma"),
    ({"reference": "yesterday"}, "reference must be one of auto, activation, evaluation"),
    ({"reference_windows": 0}, "reference_windows must be between 1 and 50"),
    ({"step": "10s"}, "at least the bucket width"),
    ({"window": "7d", "step": "1m"}, "too many points"),
    ({"calibrator": "newest"}, "calibrator must be"),
]


def test_bad_queries_are_400_with_one_sentence(client: Any) -> None:
    for params, message in BAD:
        response = client.get(PATH, params=params)
        assert response.status_code == 400, (params, response.text)
        body = response.json()
        assert set(body) == {"error"} and message in body["error"], (params, body)


def test_unknown_model_or_version_is_404(client: Any) -> None:
    for path in ("/v1/models/nope/versions/1/calibration", "/v1/models/digits/versions/9/calibration",
                 "/v1/models/digits/versions/staging/calibration"):
        response = client.get(path)
        assert response.status_code == 404 and "error" in response.json(), path


def test_an_empty_window_has_no_numbers_and_no_verdict(client: Any) -> None:
    body = client.get(PATH, params={"window": "1h"}).json()
    assert (body["labelled"], body["predicted"], body["label_coverage"], body["ece"]) == (0, 0, None, None)
    assert body["drift"]["state"] == "insufficient_labels"
    assert body["confidence_shift"]["state"] in ("no_reference", "insufficient_predictions")


def test_calibration_shape_calibrator_selection_and_history(client: Any) -> None:
    x, y = digits()
    body = predict(client, x[:200])
    post_labels(client, ids_of(body), y[:200].tolist())
    active = client.get(PATH, params={"window": "1h", "bins": 10, "step": "10m"}).json()
    assert active["calibrator_version"] == body["calibrator_version"] == 1
    assert (active["labelled"], active["n_bins"], len(active["reliability"])) == (200, 10, 10)
    assert len(active["series"]) == 6 and sum(p["labelled"] for p in active["series"]) == 200
    for key in ("ece", "ece_ci", "mce", "adaptive_ece", "classwise_ece", "brier", "nll", "accuracy",
                "mean_confidence", "label_coverage", "drift", "drift_checks", "reference", "accuracy_gap",
                "confidence_shift"):
        assert key in active, key
    everything = client.get(PATH, params={"window": "1h", "calibrator": "all"}).json()
    assert everything["calibrator_version"] is None and everything["labelled"] == 200
    assert everything["reference"]["source"] == "none"
    other = client.get(PATH, params={"window": "1h", "calibrator": "7"}).json()
    assert other["labelled"] == 0
    history = client.get("/v1/models/digits/versions/1/calibrators").json()
    assert [c["state"] for c in history["calibrators"]] == ["active"]


def test_metrics_exposes_per_bin_counters_with_exact_names(client: Any) -> None:
    x, y = digits()
    body = predict(client, x[:50])
    post_labels(client, ids_of(body), y[:50].tolist())
    text = client.get("/metrics").text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    for name in ("calibserve_calibration_bin_count_total", "calibserve_calibration_bin_confidence_sum_total",
                 "calibserve_calibration_bin_correct_sum_total"):
        rows = [s for s in samples if s.startswith(name + "{")]
        assert rows, name
        assert all('model="digits"' in s and 'version="1"' in s and 'calibrator="1"' in s and 'bin="' in s
                   for s in rows)
    counted = sum(float(s.rsplit(" ", 1)[1]) for s in samples
                  if s.startswith("calibserve_calibration_bin_count_total{"))
    assert counted == 50
    assert "# TYPE calibserve_calibration_bin_count_total counter" in text


def test_classwise_view_has_one_reliability_diagram_per_class(client: Any) -> None:
    import numpy as np

    x, y = digits()
    body = predict(client, x[:300])
    post_labels(client, ids_of(body), y[:300].tolist())
    out = client.get(PATH, params={"window": "1h", "view": "classwise"}).json()
    probs = np.array([p["probabilities"] for p in body["predictions"]], dtype=np.float32).astype(np.float64)
    diagrams = out["classwise_reliability"]
    assert [d["class_index"] for d in diagrams] == list(range(10))
    for k in (0, 3, 9):
        q = probs[:, k]
        # right-closed equal-width bins (m/15, (m+1)/15], the first one closed at 0 — computed independently
        m = np.clip(np.ceil(q * 15).astype(int) - 1, 0, 14)
        for b in diagrams[k]["bins"]:
            inside = m == b["bin"]
            assert b["count"] == int(inside.sum())
            if inside.any():
                assert b["probability"] == pytest.approx(q[inside].mean(), abs=1e-6)
                assert b["frequency"] == pytest.approx(float((y[:300][inside] == k).mean()), abs=1e-12)
        ece_k = sum(abs((y[:300][m == j] == k).sum() - q[m == j].sum()) for j in range(15)) / 300
        assert diagrams[k]["ece"] == pytest.approx(ece_k, abs=1e-6)
    assert "classwise_reliability" not in client.get(PATH, params={"window": "1h"}).json()
    bad = client.get(PATH, params={"view": "everything"})
    assert bad.status_code == 400 and "view must be one of summary, classwise" in bad.json()["error"]


def test_metrics_show_loop_lag_gauge_refresh_cost_and_on_sqlite_write_lock_waits(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app

    x, y = digits()
    with TestClient(create_app(settings.model_copy(update={"loop_lag_interval_seconds": 0.01}))) as client:
        body = predict(client, x[:20])
        post_labels(client, ids_of(body), y[:20].tolist())  # a feedback commit: one SQLite write
        time.sleep(0.2)  # ~20 lag samples
        deadline = time.monotonic() + 10
        text = client.get("/metrics").text
        while "calibserve_monitor_refresh_cpu_seconds " not in text and time.monotonic() < deadline:
            time.sleep(0.1)  # the first gauge refresh runs at the first poll (0.2 s in these settings)
            text = client.get("/metrics").text
    counts = {line.split(" ")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.endswith(tuple("0123456789")) and "_count" in line.split(" ")[0]}
    assert counts["calibserve_event_loop_lag_seconds_count"] >= 5
    refresh = [line for line in text.splitlines() if line.startswith("calibserve_monitor_refresh_cpu_seconds ")]
    assert len(refresh) == 1 and 0.0 < float(refresh[0].split(" ")[1]) < 5.0  # the first refresh ran at start
    waits = counts["calibserve_sqlite_write_lock_wait_seconds_count"]
    assert waits >= 1 if settings.database_url.startswith("sqlite") else waits == 0


def test_the_served_process_runs_numpy_blas_on_one_thread(settings: Settings) -> None:
    from fastapi.testclient import TestClient
    from threadpoolctl import threadpool_info

    from service.app import create_app

    with TestClient(create_app(settings)):
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(n == 1 for n in blas)
