"""Admin: bearer auth, re-fit with held-out evidence, activation policies, rollback, audit log."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.factories import digits, ids_of, post_labels, predict

REFIT = "/v1/admin/models/digits/versions/1/calibrators"


def _label_traffic(client, n: int = 400) -> None:  # type: ignore[no-untyped-def]
    x, y = digits()
    body = predict(client, x[:n])
    post_labels(client, ids_of(body), [int(v) for v in y[:n]])


def test_auth_missing_wrong_and_disabled(client, settings) -> None:
    r = client.post(REFIT, json={})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    r = client.post(REFIT, json={}, headers={"Authorization": "Bearer test-admin-tokeX"})
    assert r.status_code == 403 and "test-admin-token" not in r.text
    with TestClient(create_app(settings.model_copy(update={"admin_token": None}))) as c:
        r = c.post(REFIT, json={}, headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "no admin token is configured" in r.json()["error"]
    metrics = client.get("/metrics").text
    assert 'calibserve_admin_auth_failures_total{reason="missing"} 1.0' in metrics


def test_refit_refuses_too_few_labels_and_missing_classes(client, admin_headers) -> None:
    r = client.post(REFIT, json={"method": "temperature"}, headers=admin_headers)
    assert r.status_code == 422 and "only 0 labelled predictions" in r.json()["error"]
    x, y = digits()
    keep = np.flatnonzero(y < 5)[:150]  # classes 5..9 never labelled
    post_labels(client, ids_of(predict(client, x[keep])), [int(v) for v in y[keep]])
    r = client.post(REFIT, json={"method": "temperature"}, headers=admin_headers)
    assert r.status_code == 422 and "classes [5, 6, 7, 8, 9]" in r.json()["error"]
    r = client.post(REFIT, json={"method": "nonsense", "min_per_class": 1, "min_labels": 10},
                    headers=admin_headers)
    assert r.status_code == 400 and r.json()["error"].startswith("unknown calibration method 'nonsense'; choose")
    r = client.post(REFIT, json={"activate": "sometimes"}, headers=admin_headers)
    assert r.status_code == 400 and "activate" in r.json()["error"]


def test_dry_run_changes_nothing(client, admin_headers) -> None:
    _label_traffic(client)
    r = client.post(REFIT, json={"dry_run": True, "activate": "always"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dry_run"] and not body["activated"] and body["calibrator_version"] is None
    for part in ("before", "after", "active"):
        assert np.isfinite(body["evaluation"][part]["nll"])
    history = client.get("/v1/models/digits/versions/1/calibrators").json()["calibrators"]
    assert [c["calibrator_version"] for c in history] == [1]


def test_refit_always_activates_and_rollback_restores(client, admin_headers) -> None:
    _label_traffic(client)
    before = client.get("/v1/models/digits/versions/1/calibrators").json()["calibrators"][0]
    r = client.post(REFIT, json={"activate": "always"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["calibrator_version"] == 2 and r.json()["activated"]
    x, _ = digits()
    assert predict(client, x[:1])["calibrator_version"] == 2
    r = client.post(REFIT + "/rollback", headers=admin_headers)
    assert r.status_code == 200 and r.json()["calibrator_version"] == 1
    body = predict(client, x[:1])
    assert body["calibrator_version"] == 1
    history = {c["calibrator_version"]: c for c in
               client.get("/v1/models/digits/versions/1/calibrators").json()["calibrators"]}
    assert history[1]["params"] == before["params"] and history[1]["state"] == "active"
    assert history[2]["state"] == "retired"
    actions = [e["action"] for e in client.get("/v1/admin/audit", headers=admin_headers).json()["entries"]]
    assert actions[:2] == ["rollback", "refit"]


def test_if_better_activates_a_clearly_better_calibrator(client, admin_headers, settings) -> None:
    """Serve with a deliberately wrong temperature (T = 5): a re-fit must win and be activated."""
    from service.db import calibrators as rows

    with client.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        row = rows.insert_calibrator(session=session, model="digits", version=1, method="temperature",
                                     params={"temperature": 5.0}, source="refit", created_by="test")
        rows.activate_calibrator(session=session, row=row)
        session.commit()
    client.app.state.services.registry.sync_calibrators()  # type: ignore[attr-defined]
    _label_traffic(client)
    r = client.post(REFIT, json={"activate": "if_better"}, headers=admin_headers)
    body = r.json()
    assert r.status_code == 201 and body["better_than_active"] and body["activated"], json.dumps(body)[:500]
    assert body["evaluation"]["nll_gain_vs_active"]["ci"][0] > 0


def test_if_better_keeps_the_active_one_when_the_candidate_is_worse(client, admin_headers) -> None:
    """Identity on a model whose active calibrator is a fitted temperature: not better → not activated."""
    _label_traffic(client)
    r = client.post(REFIT, json={"method": "identity", "activate": "if_better"}, headers=admin_headers)
    body = r.json()
    assert r.status_code == 201 and not body["better_than_active"] and not body["activated"]
    assert body["calibrator_version"] == 2
    assert predict(client, digits()[0][:1])["calibrator_version"] == 1


def test_activate_unknown_calibrator_is_404(client, admin_headers) -> None:
    r = client.post(REFIT + "/9/activate", headers=admin_headers)
    assert r.status_code == 404 and "no calibrator 9" in r.json()["error"]
    r = client.post(REFIT + "/rollback", headers=admin_headers)
    assert r.status_code == 409 and "no previous calibrator" in r.json()["error"]


@pytest.mark.parametrize("path", ["/v1/admin/audit", REFIT + "/rollback"])
def test_every_admin_route_requires_the_token(client, path) -> None:
    r = client.request("GET" if path.endswith("audit") else "POST", path)
    assert r.status_code == 401


def test_token_rotation_from_a_file(settings, tmp_path) -> None:
    """Several tokens (one per line in a file, plus the env one) are all valid: rotation without downtime."""
    token_file = tmp_path / "tokens"
    token_file.write_text("old-token\nnew-token\n")
    with TestClient(create_app(settings.model_copy(update={"admin_token_file": token_file}))) as c:
        for token in ("old-token", "new-token", "test-admin-token"):
            r = c.get("/v1/admin/audit", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, token
        assert c.get("/v1/admin/audit", headers={"Authorization": "Bearer other"}).status_code == 403
