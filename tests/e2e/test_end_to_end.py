"""The whole product through a real uvicorn server on 127.0.0.1: predict → feedback → ECE → refit.

Runs on SQLite and on PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.server import running_server
from tests.factories import digits

pytestmark = pytest.mark.e2e
TOKEN = "e2e-token"


def test_predict_feedback_calibration_metrics_refit(database_url: str, model_repository: Path) -> None:
    x, y = digits()
    rows, labels = x[:400], y[:400]
    with running_server(database_url, model_repository, ADMIN_TOKEN=TOKEN) as base, httpx.Client(
        base_url=base, timeout=30
    ) as http:
        ids, first_versions = [], set()
        for start in range(0, len(rows), 50):
            r = http.post("/v1/models/digits/predict", json={"instances": rows[start:start + 50].tolist()})
            assert r.status_code == 200, r.text
            first_versions.add(r.json()["calibrator_version"])
            ids += [p["prediction_id"] for p in r.json()["predictions"]]
        assert first_versions == {1}

        items = [{"prediction_id": p, "label": int(lab)} for p, lab in zip(ids, labels, strict=True)]
        r = http.post("/v1/feedback", json={"items": items})
        assert r.status_code == 200 and r.json()["counts"] == {"accepted": 400}

        cal = http.get("/v1/models/digits/versions/1/calibration", params={"window": "1h"}).json()
        assert cal["labelled"] == 400 and cal["predicted"] == 400 and cal["label_coverage"] == 1.0
        assert 0.0 <= cal["ece_ci"][0] <= cal["ece"] <= cal["ece_ci"][1] < 0.2
        assert sum(b["count"] for b in cal["reliability"]) == 400

        scrape = http.get("/metrics").text
        counted = sum(float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
                      if line.startswith("calibserve_calibration_bin_count_total{"))
        assert counted == 400

        r = http.post("/v1/admin/models/digits/versions/1/calibrators", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"method": "temperature", "activate": "always"})
        assert r.status_code == 201, r.text
        new_version = r.json()["calibrator_version"]
        assert new_version == 2
        r = http.post("/v1/models/digits/predict", json={"instances": rows[:5].tolist()})
        body = r.json()
        assert body["calibrator_version"] == new_version
        probs = np.array([p["probabilities"] for p in body["predictions"]])
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
