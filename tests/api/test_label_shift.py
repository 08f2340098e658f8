"""HTTP surface of the label-shift estimate (GET …/label_shift) and its gauges, on SQLite and PostgreSQL:
calm digits traffic first (the calibrator's reference), then traffic made of three classes only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.handlers.gauges import refresh_gauges
from service.settings import Settings
from tests.factories import digits, predict

PATH = "/v1/models/digits/versions/1/label_shift"


@pytest.fixture
def shift_client(settings: Settings) -> Iterator[Any]:
    with TestClient(create_app(settings.model_copy(update={"label_shift_rows": 300}))) as c:
        yield c


def test_a_class_mix_change_is_estimated_and_alarms(shift_client: Any) -> None:
    x, y = digits()
    rng = np.random.default_rng(0)
    calm = rng.choice(len(y), 300, replace=False)
    skewed = rng.choice(np.flatnonzero(np.isin(y, [1, 8, 9])), 300, replace=False)
    writer = shift_client.app.state.services.writer
    predict(shift_client, x[calm])
    assert writer.flush()  # the prediction log is written off the request path
    before = shift_client.get(PATH, params={"window": "1h"}).json()
    assert before["state"] == "ok", before  # the reference rows themselves: no shift
    predict(shift_client, x[skewed])
    assert writer.flush()
    response = shift_client.get(PATH, params={"window": "1h"})
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "shifted", body
    assert body["n"] == 300 and body["reference_rows"] == 300
    assert sum(body["prior"][k] for k in (1, 8, 9)) > 0.8  # truth: 1.0; the reference has ~0.3
    lo, hi = body["prior_ci"]
    # a percentile interval need not hold the estimate of a class near 0 exactly (EM's boundary)
    assert all(a - 0.01 <= p <= b + 0.01 for a, p, b in zip(lo, body["prior"], hi, strict=True))
    assert body["calibrator_version"] == 1 and body["n_classes"] == 10

    services = shift_client.app.state.services
    refresh_gauges(services)
    m = services.metrics.registry
    labels = {"model": "digits", "version": "1", "calibrator": "1"}
    assert m.get_sample_value("calibserve_label_shift", labels) == 1.0
    assert m.get_sample_value("calibserve_label_shift_tv", labels) == pytest.approx(body["tv"], abs=0.05)
    assert m.get_sample_value("calibserve_class_prior_estimate", {**labels, "class_index": "8"}) == pytest.approx(
        body["prior"][8], abs=0.05)
    assert m.get_sample_value("calibserve_calibration_drift_cs", labels) == 0.0  # no labels: nothing to alarm on
    text = shift_client.get("/metrics").text
    assert 'calibserve_class_prior_estimate{calibrator="1",class_index="1",model="digits",version="1"}' in text


def test_bad_label_shift_queries(shift_client: Any) -> None:
    response = shift_client.get(PATH, params={"window": "forever"})
    assert response.status_code == 400 and "is not a duration" in response.json()["error"]
    response = shift_client.get("/v1/models/nope/versions/1/label_shift")
    assert response.status_code == 404 and set(response.json()) == {"error"}
    assert shift_client.get(PATH, params={"calibrator": "all"}).json()["state"] == "no_reference"
    assert shift_client.get(PATH).json()["state"] == "no_reference"  # no predictions yet
