"""Calibration state in the database, through the real app, on SQLite and PostgreSQL: late labels land in
the bucket of their prediction, a retried batch is a no-op, concurrent feedback loses nothing, and window
metrics equal the calibration core's metrics on the raw stored rows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from service.calibration import metrics
from service.db.stats import as_utc, bucket_start
from service.db.tables import CalibrationBin
from tests.factories import post_labels
from tests.monitoring.stored import raw_labelled, state_totals, store_predictions, synthetic_probs

TOL = 1e-9


def calibration(client: Any, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/models/digits/versions/1/calibration", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def counter_total(client: Any, name: str) -> float:
    registry = client.app.state.services.metrics.registry
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == name)


def past_bucket(hours: float) -> datetime:
    return bucket_start(datetime.now(UTC) - timedelta(hours=hours), 60)


def test_late_labels_land_in_the_bucket_of_their_prediction(client: Any) -> None:
    engine = client.app.state.services.engine
    base = past_bucket(3)
    times = [base + timedelta(seconds=5), base + timedelta(minutes=47, seconds=59),
             base + timedelta(hours=2, minutes=30)]
    probs, labels = synthetic_probs(30, seed=1)
    ids = store_predictions(engine, probs, [times[i % 3] for i in range(30)])

    assert post_labels(client, ids, labels.tolist())["counts"] == {"accepted": 30}  # labels arrive now

    with engine.connect() as conn:
        per_bucket = {as_utc(b): n for b, n in conn.execute(
            select(CalibrationBin.bucket, func.sum(CalibrationBin.count)).group_by(CalibrationBin.bucket))}
    assert per_bucket == {bucket_start(t, 60): 10.0 for t in times}
    first_hour = calibration(client, start=base.isoformat(), end=(base + timedelta(hours=1)).isoformat())
    assert (first_hour["labelled"], first_hour["predicted"], first_hour["label_coverage"]) == (20, 20, 1.0)
    assert calibration(client, window="10m")["labelled"] == 0  # nothing was *predicted* in the last minutes


def test_retried_batch_changes_nothing(client: Any) -> None:
    engine = client.app.state.services.engine
    probs, labels = synthetic_probs(40, seed=2)
    ids = store_predictions(engine, probs, past_bucket(1))
    first = post_labels(client, ids, labels.tolist())
    assert first["counts"] == {"accepted": 40}
    before, counted = state_totals(engine), counter_total(client, "calibserve_calibration_bin_count_total")

    retry = post_labels(client, ids, labels.tolist())
    conflicting = post_labels(client, ids[:5], ((labels[:5] + 1) % 10).tolist())

    assert retry["counts"] == {"duplicate": 40}
    assert conflicting["counts"] == {"conflict": 5}
    assert [i["stored_label"] for i in conflicting["items"]] == labels[:5].tolist()
    assert state_totals(engine) == before
    assert counter_total(client, "calibserve_calibration_bin_count_total") == counted == 40


def test_concurrent_feedback_loses_nothing(client: Any) -> None:
    engine = client.app.state.services.engine
    n, threads = 400, 8
    probs, labels = synthetic_probs(n, seed=3)
    ids = store_predictions(engine, probs, [past_bucket(2) + timedelta(minutes=i % 7) for i in range(n)])
    accepted: list[int] = []
    errors: list[BaseException] = []

    def post(t: int) -> None:
        # each thread labels its own slice AND half of its neighbour's: every id is raced by two threads
        mine = list(range(t * n // threads, (t + 1) * n // threads))
        theirs = [(i + n // threads) % n for i in mine[: len(mine) // 2]]
        order = mine + theirs
        try:
            for start in range(0, len(order), 10):
                chunk = order[start:start + 10]
                body = post_labels(client, [ids[i] for i in chunk], labels[chunk].tolist())
                accepted.append(body["counts"].get("accepted", 0))
                assert set(body["counts"]) <= {"accepted", "duplicate"}
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=post, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors, errors
    totals = state_totals(engine)
    assert sum(accepted) == totals["feedback"] == n
    assert totals["bin_count"] == totals["totals_count"] == n
    assert totals["class_count"] == n * 10  # every row lands once in every class's histogram
    assert counter_total(client, "calibserve_calibration_bin_count_total") == n
    y_hat = probs.argmax(axis=1)
    assert totals["bin_correct"] == float((y_hat == labels).sum())


@pytest.fixture
def labelled_window(client: Any) -> tuple[datetime, datetime]:
    """600 predictions over 6 one-minute buckets (80% labelled) plus labelled ones outside the window."""
    engine = client.app.state.services.engine
    start = past_bucket(1)
    end = start + timedelta(minutes=6)
    probs, labels = synthetic_probs(700, seed=4)
    inside = [start + timedelta(seconds=int(s)) for s in np.linspace(0, 359, 600)]
    outside = [start - timedelta(minutes=3)] * 50 + [end + timedelta(seconds=1)] * 50
    ids = store_predictions(engine, probs, inside + outside)
    keep = [i for i in range(700) if i % 5 != 0 or i >= 600]
    post_labels(client, [ids[i] for i in keep], labels[keep].tolist())
    return start, end


@pytest.mark.parametrize("bins", [15, 10, 30])
def test_window_metrics_equal_metrics_on_raw_rows(client: Any, labelled_window: tuple[datetime, datetime],
                                                  bins: int) -> None:
    start, end = labelled_window
    engine = client.app.state.services.engine
    got = calibration(client, start=start.isoformat(), end=end.isoformat(), bins=bins)
    p, y = raw_labelled(engine, start=start, end=end)

    assert (got["labelled"], got["predicted"]) == (len(y), 600) == (480, 600)
    assert got["label_coverage"] == pytest.approx(0.8, abs=TOL)
    for key, expected in {
        "ece": metrics.ece(p, y, bins), "mce": metrics.mce(p, y, bins), "brier": metrics.brier(p, y),
        "nll": metrics.nll(p, y), "accuracy": metrics.accuracy(p, y),
        "mean_confidence": metrics.mean_confidence(p, y),
        "classwise_ece": metrics.classwise_ece(p, y, 15),  # the class-wise table is kept at ece_bins = 15
    }.items():
        assert got[key] == pytest.approx(expected, abs=TOL), key
    rel = metrics.reliability_bins(p, y, bins)
    assert [r["count"] for r in got["reliability"]] == rel.count.astype(int).tolist()
    for row, conf, acc in zip(got["reliability"], rel.confidence, rel.accuracy, strict=True):
        if row["count"]:
            assert (row["confidence"], row["accuracy"]) == (pytest.approx(conf, abs=TOL), pytest.approx(acc, abs=TOL))
    # AdaECE is approximated from whole micro-bins of width 1/300 (documented), not exact
    assert got["adaptive_ece"] == pytest.approx(metrics.adaptive_ece(p, y, bins, variant="equal_mass"), abs=0.02)
    assert got["ece_ci"][0] <= got["ece_ci"][1]


def test_series_points_equal_raw_rows_per_sub_window(client: Any, labelled_window: tuple[datetime, datetime]) -> None:
    start, end = labelled_window
    engine = client.app.state.services.engine
    got = calibration(client, start=(start - timedelta(minutes=4)).isoformat(), end=end.isoformat(), step="2m")
    points = got["series"]
    assert len(points) == 5
    assert sum(pt["labelled"] for pt in points) == got["labelled"] == 480 + 50
    for pt in points:
        a = datetime.fromisoformat(pt["window"]["start"])
        b = datetime.fromisoformat(pt["window"]["end"])
        p, y = raw_labelled(engine, start=a, end=b)
        assert pt["labelled"] == len(y)
        if len(y):
            assert pt["ece"] == pytest.approx(metrics.ece(p, y, 15), abs=TOL)
            assert pt["accuracy"] == pytest.approx(metrics.accuracy(p, y), abs=TOL)
        else:
            assert pt["ece"] is None


def test_label_coverage_counts_served_predictions(client: Any) -> None:
    from tests.factories import digits, ids_of, predict

    x, y = digits()
    body = predict(client, x[:120])
    post_labels(client, ids_of(body)[:30], y[:30].tolist())
    got = calibration(client, window="1h")
    assert (got["predicted"], got["labelled"]) == (120, 30)
    assert got["label_coverage"] == pytest.approx(0.25, abs=TOL)
    assert got["accuracy_gap"]["expected_accuracy"] == pytest.approx(
        float(np.mean([pr["confidence"] for pr in body["predictions"]])), abs=1e-6)  # float32 stored
