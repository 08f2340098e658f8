"""Every hostile-input case (bench/_hostile_cases.py) through the real ASGI app on SQLite and PostgreSQL:
the documented 4xx with ``{"error": …}`` (or a 200 with per-item statuses), never a 5xx."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench._hostile_cases import hostile_cases
from tests.conftest import ADMIN_TOKEN
from tests.factories import digits, ids_of, predict


def _send(client: Any, case: Any) -> Any:
    headers = dict(case.headers)
    if case.admin:
        headers["authorization"] = f"Bearer {ADMIN_TOKEN}"
    return client.request(case.method, case.path, params=case.params, content=case.body, headers=headers)


def test_every_hostile_case_gets_its_4xx(client: Any) -> None:
    x, _ = digits()
    pid = ids_of(predict(client, x[:1]))[0]
    wrong = []
    for case in hostile_cases(pid):
        response = _send(client, case)
        body = response.json()
        if response.status_code != case.expected or (response.status_code >= 400 and set(body) != {"error"}):
            wrong.append((case.name, case.expected, response.status_code, response.text[:200]))
    assert wrong == []


def test_unicode_digit_versions_are_not_version_one(client: Any) -> None:
    x, _ = digits()
    ok = client.post("/v1/models/digits/versions/1/predict", json={"instances": x[:1].tolist()})
    arabic = client.post("/v1/models/digits/versions/١/predict", json={"instances": x[:1].tolist()})
    assert ok.status_code == 200 and arabic.status_code == 404
    assert "no version or alias '١'" in arabic.json()["error"]


def test_feedback_with_unicode_digit_labels_stores_nothing_and_says_why(client: Any) -> None:
    x, _ = digits()
    pids = ids_of(predict(client, x[:2]))
    response = client.post("/v1/feedback", json={"items": [{"prediction_id": pids[0], "label": "²"},
                                                           {"prediction_id": pids[1], "label": 3}]})
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["status"] for i in items] == ["invalid", "accepted"] and "'²'" in items[0]["detail"]


def test_bounded_tags_are_accepted(client: Any) -> None:
    x, _ = digits()
    body = predict(client, x[:2], tags={"tenant": "a", "experiment": {"arm": "b"}})
    assert len(body["predictions"]) == 2
    v2 = client.post("/v2/models/digits/infer", json={
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": x[0].tolist()}],
        "parameters": {"tags": '{"tenant": "a"}'}})
    assert v2.status_code == 200, v2.text
    assert np.isclose(sum(v2.json()["outputs"][0]["data"]), 1.0, atol=1e-5)
