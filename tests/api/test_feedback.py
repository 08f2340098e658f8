"""Feedback: per-item outcomes, idempotent retries, labels by name, and nothing silently dropped."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from service.db.engine import make_engine
from service.db.tables import CalibrationBin, Feedback
from tests.factories import digits, ids_of, post_labels, predict


def _scalar(url: str, expression) -> float:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    with engine.connect() as conn:
        value = conn.execute(select(expression)).scalar()
    engine.dispose()
    return float(value or 0)


def test_accept_duplicate_conflict_unknown_invalid(client, settings) -> None:
    x, y = digits()
    ids = ids_of(predict(client, x[:4]))
    body = post_labels(client, ids[:2], [int(y[0]), str(y[1])])  # by index and by class name
    assert body["counts"] == {"accepted": 2}
    items = [
        {"prediction_id": ids[0], "label": int(y[0])},  # same label again: duplicate
        {"prediction_id": ids[1], "label": (int(y[1]) + 1) % 10},  # different label: conflict, first kept
        {"prediction_id": str(uuid.uuid4()), "label": 1},  # unknown
        {"prediction_id": "not-a-uuid", "label": 1},  # invalid id
        {"prediction_id": ids[2], "label": 10},  # label out of range
        {"prediction_id": ids[3], "label": "eleven"},  # not a class name
    ]
    body = client.post("/v1/feedback", json={"items": items}).json()
    statuses = [i["status"] for i in body["items"]]
    assert statuses == ["duplicate", "conflict", "unknown", "invalid", "invalid", "invalid"]
    assert body["items"][1]["stored_label"] == int(y[1])
    assert "out of range" in body["items"][4]["detail"]
    assert _scalar(settings.database_url, func.count(Feedback.id)) == 2


def test_retried_batch_changes_nothing(client, settings) -> None:
    x, y = digits()
    ids = ids_of(predict(client, x[:30]))
    first = post_labels(client, ids, [int(v) for v in y[:30]])
    assert first["counts"] == {"accepted": 30}
    before = _scalar(settings.database_url, func.sum(CalibrationBin.count))
    again = post_labels(client, ids, [int(v) for v in y[:30]])
    assert again["counts"] == {"duplicate": 30}
    assert _scalar(settings.database_url, func.sum(CalibrationBin.count)) == before == 30


def test_same_id_twice_in_one_batch(client) -> None:
    x, _ = digits()
    (pid,) = ids_of(predict(client, x[:1]))
    body = client.post("/v1/feedback", json={"items": [{"prediction_id": pid, "label": 3},
                                                       {"prediction_id": pid, "label": 4}]}).json()
    assert [i["status"] for i in body["items"]] == ["accepted", "conflict"]


def test_label_right_after_predict_is_not_unknown(client) -> None:
    """The writer may not have flushed yet: the feedback path flushes before calling an id unknown."""
    x, y = digits()
    for i in range(5):
        (pid,) = ids_of(predict(client, x[i:i + 1]))
        assert post_labels(client, [pid], [int(y[i])])["counts"] == {"accepted": 1}


def test_batch_limits_and_malformed_bodies(client, settings) -> None:
    r = client.post("/v1/feedback", json={"items": []})
    assert r.status_code == 400 and "at least one" in r.json()["error"]
    too_many = [{"prediction_id": str(uuid.uuid4()), "label": 0}] * (settings.max_feedback_items + 1)
    r = client.post("/v1/feedback", json={"items": too_many})
    assert r.status_code == 413 and "at most" in r.json()["error"]
    r = client.post("/v1/feedback", json={"items": [{"label": 1}]})
    assert r.status_code == 400 and "prediction_id" in r.json()["error"]
    r = client.post("/v1/feedback", json={"items": "x"})
    assert r.status_code == 400


def test_poisoned_requests_never_fail_their_concurrent_peers(client) -> None:  # type: ignore[no-untyped-def]
    """32 concurrent clients, every tenth posting the label "²" (passes str.isdigit, then int() raised):
    before, the coalesced transaction failed and legitimate labels got 500s and were never stored."""
    from concurrent.futures import ThreadPoolExecutor

    x, y = digits()
    ids = ids_of(predict(client, x[:320]))

    def post(i: int) -> tuple[int, dict[str, int]]:
        labels: list[object] = [int(v) for v in y[i * 10:(i + 1) * 10]]
        if i % 10 == 3:
            labels[0] = "²"
        items = [{"prediction_id": p, "label": lab} for p, lab in zip(ids[i * 10:(i + 1) * 10], labels, strict=True)]
        r = client.post("/v1/feedback", json={"items": items})
        return r.status_code, r.json().get("counts", {})

    with ThreadPoolExecutor(32) as pool:
        outcomes = list(pool.map(post, range(32)))
    assert all(status == 200 for status, _ in outcomes), outcomes
    assert sum(c.get("accepted", 0) for _, c in outcomes) == 320 - 3
    assert sum(c.get("invalid", 0) for _, c in outcomes) == 3
    retry = [post(i)[1] for i in range(32)]  # a retry stores nothing new: everything was stored the first time
    assert sum(c.get("accepted", 0) for c in retry) == 0
