"""Two server processes on one PostgreSQL database: activating a calibrator on one makes the other serve
it within the documented delay (``calibrator_poll_seconds``), under load, with zero failed requests."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.db.migrate import upgrade
from tests.conftest import drop_postgres_database, fresh_postgres_database
from tests.e2e.server import running_server
from tests.factories import digits, softmax

pytestmark = pytest.mark.e2e
TOKEN = "replica-token"
POLL = 0.5
BOUND = 2.0  # documented propagation bound (README): poll interval + one request, with margin




def _infer(http: httpx.Client, rows: np.ndarray) -> dict:  # type: ignore[type-arg]
    body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}],
            "outputs": [{"name": "logits"}, {"name": "probabilities"}]}
    r = http.post("/v2/models/digits/infer", json=body)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def test_activation_propagates_to_the_other_replica_under_load(
    model_repository: Path, postgres_available: bool
) -> None:
    url, name = fresh_postgres_database()
    try:
        upgrade(url)
        env = {"ADMIN_TOKEN": TOKEN, "CALIBRATOR_POLL_SECONDS": POLL}
        with running_server(url, model_repository, **env) as a, running_server(url, model_repository, **env) as b:
            x, y = digits()
            with httpx.Client(base_url=a, timeout=30) as http:
                predicted = http.post("/v1/models/digits/predict", json={"instances": x[:400].tolist()}).json()
                ids = [p["prediction_id"] for p in predicted["predictions"]]
                http.post("/v1/feedback", json={"items": [{"prediction_id": p, "label": int(v)}
                                                         for p, v in zip(ids, y[:400], strict=True)]})
                r = http.post("/v1/admin/models/digits/versions/1/calibrators",
                              headers={"Authorization": f"Bearer {TOKEN}"},
                              json={"method": "temperature", "activate": "never", "params": {}})
                assert r.status_code == 201, r.text
                cv2 = r.json()["calibrator_version"]
                history = http.get("/v1/models/digits/versions/1/calibrators").json()["calibrators"]
                temperatures = {c["calibrator_version"]: c["params"]["temperature"] for c in history}

            results: list[tuple[str, float, dict]] = []  # type: ignore[type-arg]
            failures: list[str] = []
            stop = threading.Event()

            def load(base: str, seed: int) -> None:
                rng = np.random.default_rng(seed)
                with httpx.Client(base_url=base, timeout=10) as c:
                    while not stop.is_set():
                        rows = x[rng.integers(0, len(x), size=int(rng.integers(1, 5)))]
                        started = time.monotonic()
                        try:
                            results.append((base, started, _infer(c, rows)))
                        except Exception as exc:  # counted, never ignored
                            failures.append(f"{base}: {exc!r}")

            threads = [threading.Thread(target=load, args=(base, i)) for i, base in enumerate([a, b, a, b])]
            for t in threads:
                t.start()
            time.sleep(1.0)
            with httpx.Client(base_url=a, timeout=30) as http:
                r = http.post(f"/v1/admin/models/digits/versions/1/calibrators/{cv2}/activate",
                              headers={"Authorization": f"Bearer {TOKEN}"})
                assert r.status_code == 200, r.text
            activated = time.monotonic()
            time.sleep(BOUND + 1.5)
            stop.set()
            for t in threads:
                t.join(timeout=15)

        assert failures == []
        assert len(results) > 50
        for _base, _t, body in results:  # every response's numbers match the calibrator it names
            cv = body["parameters"]["calibrator_version"]
            out = {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in body["outputs"]}
            np.testing.assert_allclose(out["probabilities"], softmax(out["logits"] / temperatures[cv]), atol=2e-5)
        for base in (a, b):
            late = [body["parameters"]["calibrator_version"] for srv, t, body in results
                    if srv == base and t > activated + BOUND]
            early = [body["parameters"]["calibrator_version"] for srv, t, body in results
                     if srv == base and t < activated - 0.1]
            assert late and set(late) == {cv2}, base
            assert early and set(early) == {1}, base
    finally:
        drop_postgres_database(name)
