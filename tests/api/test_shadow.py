"""Shadow calibrators over HTTP: put / update / remove (audited), the per-version limit (409), unknown
calibrator (404), auth (401/403), the compare endpoint against an independent computation, isolation from
the served calibrator's window and Prometheus counters, and promotion by ``if_better_in_shadow``."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.db import calibrators as calibrator_rows
from service.db.predictions import find_predictions
from tests.factories import digits, hand_ece, ids_of, post_labels, predict, softmax

BASE = "/v1/admin/models/digits/versions/1/calibrators"


def _temperature(client, t: float, *, activate: bool = False) -> int:  # type: ignore[no-untyped-def]
    services = client.app.state.services
    with services.sessions() as session:
        row = calibrator_rows.insert_calibrator(session=session, model="digits", version=1, method="temperature",
                                                params={"temperature": t}, source="refit", created_by="test")
        if activate:
            calibrator_rows.activate_calibrator(session=session, row=row)
        session.commit()
        cv = int(row.calibrator_version)
    services.registry.sync_calibrators()
    return cv






def test_auth_is_required(client) -> None:  # type: ignore[no-untyped-def]
    for method in ("put", "delete"):
        r = client.request(method, f"{BASE}/1/shadow")
        assert r.status_code == 401 and "Bearer" in r.json()["error"]
        r = client.request(method, f"{BASE}/1/shadow", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 403 and "error" in r.json()


def test_put_update_remove_limit_and_errors(client, admin_headers) -> None:  # type: ignore[no-untyped-def]
    cvs = [_temperature(client, t) for t in (0.5, 0.7, 0.9, 1.1)]
    r = client.put(f"{BASE}/{cvs[0]}/shadow", headers=admin_headers)
    assert r.status_code == 201 and r.json()["policy"] == "never" and r.json()["started_by"]
    r = client.put(f"{BASE}/{cvs[0]}/shadow", json={"policy": "if_better_in_shadow", "margin": 0.01},
                   headers=admin_headers)
    assert r.status_code == 200 and r.json()["policy"] == "if_better_in_shadow" and r.json()["margin"] == 0.01
    for cv in cvs[1:3]:
        assert client.put(f"{BASE}/{cv}/shadow", headers=admin_headers).status_code == 201
    r = client.put(f"{BASE}/{cvs[3]}/shadow", headers=admin_headers)
    assert r.status_code == 409 and "limit is 3" in r.json()["error"]
    r = client.put(f"{BASE}/1/shadow", headers=admin_headers)  # the active (card) calibrator
    assert r.status_code == 409 and "active" in r.json()["error"]
    r = client.put(f"{BASE}/99/shadow", headers=admin_headers)
    assert r.status_code == 404 and "no calibrator 99" in r.json()["error"]
    r = client.put("/v1/admin/models/nope/versions/1/calibrators/2/shadow", headers=admin_headers)
    assert r.status_code == 404 and "error" in r.json()
    for body in ({"policy": "sometimes"}, {"margin": -1}, {"extra": 1}):
        r = client.put(f"{BASE}/{cvs[3]}/shadow", json=body, headers=admin_headers)
        assert r.status_code == 400 and "error" in r.json(), body
    r = client.put(f"{BASE}/x/shadow", headers=admin_headers)
    assert r.status_code == 400
    empty = client.get(f"/v1/models/digits/versions/1/calibrators/{cvs[0]}/compare?window=1h&bins=10")
    assert empty.status_code == 200, empty.text  # no labels yet: n = 0, no numbers, no 500
    assert empty.json()["n"] == 0 and empty.json()["nll"]["difference"] is None
    assert empty.json()["ece"]["active"] is None and len(empty.json()["reliability"]["shadow"]) == 10
    listed = client.get("/v1/models/digits/versions/1/shadows").json()
    assert [s["calibrator_version"] for s in listed["shadows"]] == cvs[:3] and listed["max_shadows"] == 3
    assert client.delete(f"{BASE}/{cvs[1]}/shadow", headers=admin_headers).json()["in_shadow"] is False
    r = client.delete(f"{BASE}/{cvs[1]}/shadow", headers=admin_headers)
    assert r.status_code == 404 and "not in shadow" in r.json()["error"]
    assert client.put(f"{BASE}/{cvs[3]}/shadow", headers=admin_headers).status_code == 201  # room again
    actions = [e["action"] for e in client.get("/v1/admin/audit", headers=admin_headers).json()["entries"]]
    assert actions[:6] == ["shadow", "end_shadow", "shadow", "shadow", "update_shadow", "shadow"]


def test_activation_and_rollback_end_the_shadow(client, admin_headers) -> None:  # type: ignore[no-untyped-def]
    cv = _temperature(client, 0.8)
    assert client.put(f"{BASE}/{cv}/shadow", headers=admin_headers).status_code == 201
    assert client.post(f"{BASE}/{cv}/activate", headers=admin_headers).status_code == 200
    assert client.get("/v1/models/digits/versions/1/shadows").json()["shadows"] == []
    entries = client.get("/v1/admin/audit", headers=admin_headers).json()["entries"]
    assert [e["action"] for e in entries[:2]] == ["activate", "end_shadow"] and '"reason": "activate"' in \
        entries[1]["detail"]
    assert client.put(f"{BASE}/1/shadow", headers=admin_headers).status_code == 201  # the card one, now retired
    assert client.post(f"{BASE}/rollback", headers=admin_headers).json()["calibrator_version"] == 1
    assert client.get("/v1/models/digits/versions/1/shadows").json()["shadows"] == []


def test_compare_matches_an_independent_computation(client, admin_headers) -> None:  # type: ignore[no-untyped-def]
    active = _temperature(client, 0.6, activate=True)
    shadow = _temperature(client, 2.0)
    assert client.put(f"{BASE}/{shadow}/shadow", headers=admin_headers).status_code == 201
    x, y = digits()
    ids = ids_of(predict(client, x[:300]))
    post_labels(client, ids, [int(v) for v in y[:300]])
    r = client.get(f"/v1/models/digits/versions/1/calibrators/{shadow}/compare?window=1h")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n"] == 300 and body["active_calibrator_version"] == active and body["in_shadow"]

    with client.app.state.services.sessions() as session:
        stored = find_predictions(session=session, ids=ids)
    z = np.stack([stored[i].logits for i in ids]).astype(np.float64)
    pa, ps, yy = softmax(z / 0.6), softmax(z / 2.0), y[:300]
    rows = np.arange(300)
    d = -np.log(pa[rows, yy]) + np.log(ps[rows, yy])
    assert body["nll"]["difference"] == pytest.approx(d.mean(), rel=1e-9)
    assert body["nll"]["active"] == pytest.approx(-np.log(pa[rows, yy]).mean(), rel=1e-9)
    lo, hi = body["nll"]["ci"]
    assert lo < d.mean() < hi and hi - lo == pytest.approx(2 * 1.96799 * d.std(ddof=1) / np.sqrt(300), rel=1e-3)
    onehot = np.eye(10)[yy]
    brier = ((pa - onehot) ** 2).sum(1) - ((ps - onehot) ** 2).sum(1)
    assert body["brier"]["difference"] == pytest.approx(brier.mean(), rel=1e-9)
    assert body["ece"]["active"] == pytest.approx(hand_ece(pa, yy), abs=1e-9)
    assert body["ece"]["shadow"] == pytest.approx(hand_ece(ps, yy), abs=1e-9)
    assert body["ece"]["difference"] == pytest.approx(hand_ece(pa, yy) - hand_ece(ps, yy), abs=1e-9)
    assert body["ece"]["ci"] == [None, None]  # one prediction-time bucket: no bootstrap over buckets
    assert sum(b["count"] for b in body["reliability"]["active"]) == 300
    assert sum(b["count"] for b in body["reliability"]["shadow"]) == 300
    assert body["evidence"]["n"] == 300 and body["evidence"]["promotable"] is False  # policy "never"

    # the shadow never enters the served calibrator's window, the "all" view, or the per-bin counters
    for q in ("", "&calibrator=all"):
        window = client.get(f"/v1/models/digits/versions/1/calibration?window=1h{q}").json()
        assert window["labelled"] == 300, q
    assert client.get(f"/v1/models/digits/versions/1/calibration?window=1h&calibrator={shadow}").json()[
        "labelled"] == 0
    series = [s for f in text_string_to_metric_families(client.get("/metrics").text)
              for s in f.samples if s.name == "calibserve_calibration_bin_count_total"]
    assert {s.labels["calibrator"] for s in series} == {str(active)}
    assert sum(s.value for s in series) == 300

    for bad in ("?window=nonsense", "?bins=7", "?against=x"):
        r = client.get(f"/v1/models/digits/versions/1/calibrators/{shadow}/compare{bad}")
        assert r.status_code == 400 and "error" in r.json(), bad
    assert client.get("/v1/models/digits/versions/1/calibrators/99/compare").status_code == 404
    assert client.get(f"/v1/models/digits/versions/1/calibrators/{shadow}/compare?against=99").status_code == 404


def test_if_better_in_shadow_promotes_over_http(client, admin_headers) -> None:  # type: ignore[no-untyped-def]
    wrong = _temperature(client, 6.0, activate=True)
    assert client.put(f"{BASE}/1/shadow", json={"policy": "if_better_in_shadow"}, headers=admin_headers
                      ).status_code == 201
    x, y = digits()
    served = []
    for start in range(0, 1000, 100):
        body = predict(client, x[start:start + 100])
        served.append(body["calibrator_version"])
        post_labels(client, ids_of(body), [int(v) for v in y[start:start + 100]])
        if client.get("/v1/models/digits/versions/1/shadows").json()["shadows"] == []:
            break
    history = {c["calibrator_version"]: c["state"] for c in
               client.get("/v1/models/digits/versions/1/calibrators").json()["calibrators"]}
    assert served[0] == wrong and history[1] == "active" and history[wrong] == "retired"
    assert predict(client, x[:1])["calibrator_version"] == 1
    entry = client.get("/v1/admin/audit", headers=admin_headers).json()["entries"][0]
    assert entry["action"] == "promote_shadow" and entry["actor"] == "policy:if_better_in_shadow"


def test_a_refit_can_go_into_shadow_and_respects_the_limit(client, admin_headers, settings) -> None:  # type: ignore[no-untyped-def]
    x, y = digits()
    post_labels(client, ids_of(predict(client, x[:400])), [int(v) for v in y[:400]])
    r = client.post(BASE, json={"activate": "if_better_in_shadow"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["in_shadow"] and not body["activated"] and body["state"] == "candidate"
    listed = client.get("/v1/models/digits/versions/1/shadows").json()["shadows"]
    assert [(s["calibrator_version"], s["policy"]) for s in listed] == [(body["calibrator_version"],
                                                                         "if_better_in_shadow")]
    for t in (0.5, 0.9):
        assert client.put(f"{BASE}/{_temperature(client, t)}/shadow", headers=admin_headers).status_code == 201
    before = len(client.get("/v1/models/digits/versions/1/calibrators").json()["calibrators"])
    r = client.post(BASE, json={"activate": "if_better_in_shadow"}, headers=admin_headers)
    assert r.status_code == 409 and "limit is 3" in r.json()["error"]
    assert len(client.get("/v1/models/digits/versions/1/calibrators").json()["calibrators"]) == before  # atomic
