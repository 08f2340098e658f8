"""Slices through the real app (SQLite and PostgreSQL): ``slice=`` / ``by=`` on the calibration endpoint against
a hand computation on the served rows of each slice, the 400s, and the Prometheus bound with 1,000 distinct
tag values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select

from service.app import create_app
from service.db.tables import CalibrationSliceBin, SliceValue
from service.settings import Settings
from tests.factories import digits, hand_ece, ids_of, post_labels, predict

PATH = "/v1/models/digits/versions/1/calibration"


@pytest.fixture
def sliced(settings: Settings) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"slice_keys": ["country", "user"], "slice_max_values": 3})
    with TestClient(create_app(configured)) as c:
        yield c


def _serve(client: TestClient, rows: np.ndarray, tags: dict[str, Any] | None) -> dict[str, Any]:
    return predict(client, rows, **({"tags": tags} if tags is not None else {}))


def test_slice_and_by_equal_the_rows_of_each_slice(sliced: TestClient) -> None:
    x, y = digits()
    plan = [("fr", 0, 120), ("de", 120, 260), ("it", 260, 330), ("es", 330, 400), ("pl", 400, 430)]
    bodies = {c: _serve(sliced, x[a:b], {"country": c, "other_key": "x"}) for c, a, b in plan}
    untagged = _serve(sliced, x[430:470], None)
    nested = _serve(sliced, x[470:490], {"country": {"deep": "fr"}})  # not a slice value: no slice
    for c, a, b in plan:
        post_labels(sliced, ids_of(bodies[c]), y[a:b].tolist())
    post_labels(sliced, ids_of(untagged), y[430:470].tolist())
    post_labels(sliced, ids_of(nested), y[470:490].tolist())

    def served(country: str) -> tuple[np.ndarray, np.ndarray]:
        a, b = next((a, b) for c, a, b in plan if c == country)
        probs = np.array([p["probabilities"] for p in bodies[country]["predictions"]], dtype=np.float32)
        return probs.astype(np.float64), y[a:b]

    by = sliced.get(PATH, params={"window": "1h", "by": "country"})
    assert by.status_code == 200, by.text
    body = by.json()
    assert body["labelled"] == 490  # the whole window is unchanged
    entries = body["slices"]["values"]
    # labels arrive in plan order: fr, de, it are admitted (max 3), es and pl share "other"
    assert [e["slice_value"] for e in entries] == ["fr", "de", "it", "other"]  # in slot (admission) order
    got = {e["slice_value"]: e for e in entries}
    assert set(got) == {"fr", "de", "it", "other"}
    for country in ("fr", "de", "it"):
        probs, labels = served(country)
        assert got[country]["labelled"] == len(labels)
        assert got[country]["ece"] == pytest.approx(hand_ece(probs, labels), abs=1e-6)
        assert got[country]["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).mean()), abs=1e-12)
        lo, hi = got[country]["ece_ci"]
        assert lo <= got[country]["ece"] <= hi
    other = [served(c) for c in ("es", "pl")]
    probs, labels = np.concatenate([o[0] for o in other]), np.concatenate([o[1] for o in other])
    assert got["other"]["labelled"] == 100
    assert got["other"]["ece"] == pytest.approx(hand_ece(probs, labels), abs=1e-6)

    one = sliced.get(PATH, params={"window": "1h", "slice": "country:de"}).json()["slices"]
    assert one["mode"] == "slice" and [e["slice_value"] for e in one["values"]] == ["de"]
    assert one["values"][0] == got["de"]  # the same numbers, bootstrap interval included
    assert sliced.get(PATH, params={"slice": "country:other"}).json()["slices"]["values"][0] == got["other"]


def test_a_slice_of_everything_has_the_window_s_ece_and_interval(sliced: TestClient) -> None:
    x, y = digits()
    body = _serve(sliced, x[:300], {"country": "fr"})
    post_labels(sliced, ids_of(body), y[:300].tolist())
    out = sliced.get(PATH, params={"window": "1h", "by": "country"}).json()
    fr = out["slices"]["values"][0]
    assert fr["slice_value"] == "fr" and fr["labelled"] == out["labelled"] == 300
    assert (fr["ece"], fr["ece_ci"], fr["mce"], fr["reliability"]) == (out["ece"], out["ece_ci"], out["mce"],
                                                                       out["reliability"])


@pytest.mark.parametrize(("params", "says"), [
    ({"by": "region"}, "not a configured slice key"),
    ({"slice": "region:eu"}, "not a configured slice key"),
    ({"slice": "country"}, "key:value"),
    ({"slice": "country:"}, "key:value"),
    ({"slice": "country:fr", "by": "country"}, "not both"),
    ({"slice": "country:never-seen"}, "not an admitted value"),
    ({"slice": "country:" + "x" * 200}, "at most 128"),
])
def test_bad_slice_parameters_are_400(sliced: TestClient, params: dict[str, str], says: str) -> None:
    response = sliced.get(PATH, params=params)
    assert response.status_code == 400 and says in response.json()["error"], response.text


def test_no_configured_key_is_400(client: TestClient) -> None:
    response = client.get(PATH, params={"by": "country"})
    assert response.status_code == 400
    assert "none are configured" in response.json()["error"]
    operation = client.get("/openapi.json").json()["paths"][PATH.replace("digits", "{model}").replace(
        "versions/1", "versions/{version}")]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"slice", "by"} <= set(params) and "400" in operation["responses"]


def test_a_thousand_distinct_tag_values_stay_within_the_bound(sliced: TestClient, settings: Settings) -> None:
    x, y = digits()
    ids = []
    for i in range(1000):
        ids += ids_of(_serve(sliced, x[i:i + 1], {"user": f"u{i}", "country": "fr" if i % 2 else "de"}))
    post_labels(sliced, ids, y[:1000].tolist())
    families = {f.name: f for f in text_string_to_metric_families(sliced.get("/metrics").text)}
    family = families["calibserve_slice_calibration_bin_count"]
    label_sets = {tuple(sorted(s.labels.items())) for s in family.samples if s.name.endswith("_total")}
    users = {dict(s)["slice_value"] for s in label_sets if dict(s)["slice_key"] == "user"}
    # one feedback batch: its new values are admitted in sorted order (u0 < u1 < u10 < u100 < …)
    assert users == {"u0", "u1", "u10", "other"}
    assert {dict(s)["slice_key"] for s in label_sets} == {"user", "country"}
    total = sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels["slice_key"] == "user")
    assert total == 1000
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count(func.distinct(CalibrationSliceBin.slice_value)))
                              .where(CalibrationSliceBin.slice_key == "user")).scalar_one()
        admitted = conn.execute(select(func.count()).select_from(SliceValue)
                                .where(SliceValue.slice_key == "user")).scalar_one()
    engine.dispose()
    assert (stored, admitted) == (4, 3)
    by = sliced.get(PATH, params={"window": "1h", "by": "user"}).json()["slices"]["values"]
    assert [e["slice_value"] for e in by] == ["u0", "u1", "u10", "other"]
    assert [e["labelled"] for e in by] == [1, 1, 1, 997]
