"""Drift verdicts through the API: reference windows after activation, both rules, the label-free
confidence shift and the accuracy gap — on a calibrated regime and a miscalibrated one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from service.db.stats import bucket_start
from service.db.tables import Calibrator
from tests.factories import post_labels, softmax
from tests.monitoring.stored import N_CLASSES, store_predictions

REFERENCE_HOURS = 6


def regime(n: int, *, seed: int, scale: float, label_temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Served probabilities softmax(z) and labels from softmax(z / label_temperature): calibrated when the
    label temperature is 1, overconfident above 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, N_CLASSES)) * scale
    z[np.arange(n), rng.integers(0, N_CLASSES, n)] += scale  # a clear winner: confidences spread over (0.3, 1]

    q = softmax(z / label_temperature)
    labels = np.minimum((q.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), N_CLASSES - 1)
    return softmax(z).astype("<f4"), labels


@pytest.fixture
def history(client: Any) -> dict[str, datetime]:
    """Calibrator 1 activated 9 h ago; 6 calibrated reference hours, a calibrated hour, a drifted hour."""
    services = client.app.state.services
    now = datetime.now(UTC)
    activated = bucket_start(now - timedelta(hours=9), 3600)
    with services.engine.begin() as conn:
        conn.execute(update(Calibrator).where(Calibrator.model == "digits").values(activated_at=activated))
    spans = {"calm": activated + timedelta(hours=REFERENCE_HOURS),
             "drifted": activated + timedelta(hours=REFERENCE_HOURS + 1)}
    for h in range(REFERENCE_HOURS + 2):
        drifted = h == REFERENCE_HOURS + 1
        probs, labels = regime(300, seed=h, scale=2.0 if drifted else 1.0, label_temperature=3.0 if drifted else 1.0)
        start = activated + timedelta(hours=h)
        ids = store_predictions(services.engine, probs, [start + timedelta(seconds=12 * i) for i in range(300)])
        post_labels(client, ids, labels.tolist())
    return {"activated": activated, **spans}


def report(client: Any, start: datetime, **params: Any) -> dict[str, Any]:
    end = start + timedelta(hours=1)
    response = client.get("/v1/models/digits/versions/1/calibration",
                          params={"start": start.isoformat(), "end": end.isoformat(), **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("rule", ["ci", "sigma"])
def test_a_calibrated_hour_is_ok_and_a_miscalibrated_hour_drifts(client: Any, history: dict[str, datetime],
                                                                 rule: str) -> None:
    calm = report(client, history["calm"], rule=rule)
    drifted = report(client, history["drifted"], rule=rule)
    assert calm["drift"]["state"] == "ok", calm["drift"]
    assert drifted["drift"]["state"] == "drifting", drifted["drift"]
    assert calm["drift"]["rule"] == drifted["drift"]["rule"] == rule
    assert len(calm["reference"]["windows"]) == REFERENCE_HOURS  # all completed before the window
    assert drifted["drift_checks"]["gap"]["state"] == "drifting"
    assert calm["drift_checks"]["gap"]["state"] == "ok"


def test_reference_windows_never_overlap_the_analysed_window(client: Any, history: dict[str, datetime]) -> None:
    inside = report(client, history["activated"] + timedelta(hours=2), rule="sigma")
    assert len(inside["reference"]["windows"]) == 2  # only the two hours before it
    assert inside["drift"]["state"] == "no_reference"  # σ from fewer than 3 windows is noise
    assert inside["reference"]["source"] == "activation_windows"  # the CI rule can use two windows


def test_ci_rule_against_the_held_out_evaluation(client: Any, history: dict[str, datetime]) -> None:
    got = report(client, history["drifted"], reference="evaluation")
    assert got["reference"]["source"] == "held_out_evaluation"
    evaluation = got["reference"]["evaluation"]
    assert got["reference"]["ece_hi"] == evaluation["ece_hi"]
    assert got["drift"]["threshold"] == pytest.approx(evaluation["ece_hi"])


def test_label_free_confidence_shift(client: Any, history: dict[str, datetime]) -> None:
    calm = report(client, history["calm"])["confidence_shift"]
    drifted = report(client, history["drifted"])["confidence_shift"]
    assert calm["state"] == "ok" and drifted["state"] == "warning"
    assert drifted["psi"] > 0.25 > calm["psi"]
    assert calm["n_reference"] == REFERENCE_HOURS * 300 and calm["n_current"] == 300


def test_too_few_labels_give_no_verdict(client: Any, history: dict[str, datetime]) -> None:
    start = history["drifted"]
    tiny = client.get("/v1/models/digits/versions/1/calibration",
                      params={"start": start.isoformat(), "end": (start + timedelta(minutes=2)).isoformat()}).json()
    assert 0 < tiny["labelled"] < 50  # n_min is 50 in the test settings
    assert tiny["drift"]["state"] == "insufficient_labels"


def test_series_judges_each_point_against_references_of_its_own_length(client: Any,
                                                                      history: dict[str, datetime]) -> None:
    start = history["activated"]
    end = history["drifted"] + timedelta(hours=1)
    got = client.get("/v1/models/digits/versions/1/calibration",
                     params={"start": start.isoformat(), "end": end.isoformat(), "step": "1h",
                             "rule": "sigma"}).json()
    states = [p["drift"]["state"] for p in got["series"]]
    assert states[:3] == ["no_reference"] * 3
    assert states[-1] == "drifting" and states[-2] == "ok"
