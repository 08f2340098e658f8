"""The durability contract (DESIGN.md §5): a prediction id the server returned is in ``predictions`` once
the log has caught up, even when the process is SIGKILLed right after answering and restarted on the same
database and spool directory. ``python -m bench crash`` measures the same thing under load; this is its
small deterministic form.

Deterministic, not a race: the writer's flush interval is set to 5 s, so rows that only live in memory stay
there until the kill (today's in-memory queue loses all of them); a spool written before the response
makes the interval irrelevant to durability.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.faults_common import Server, count_predictions, read_stored
from tests.factories import digits

pytestmark = pytest.mark.e2e
REQUESTS = 12  # alternating /v1 and /v2, 8 rows each: 96 acknowledged predictions before the kill


def _predict(http: httpx.Client, i: int, rows: np.ndarray) -> list[str]:
    if i % 2 == 0:
        r = http.post("/v1/models/digits/predict", json={"instances": rows.tolist()})
        assert r.status_code == 200, r.text
        return [p["prediction_id"] for p in r.json()["predictions"]]
    body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}
    r = http.post("/v2/models/digits/infer", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["parameters"]["prediction_ids"]).split(",")


def test_every_returned_prediction_id_survives_a_sigkill(database_url: str, model_repository: Path,
                                                         tmp_path: Path) -> None:
    x, _ = digits()
    server = Server(database_url=database_url, repository=model_repository, work=tmp_path / "server",
                    env={"LOG_FLUSH_SECONDS": "5"})
    try:
        server.start()
        ids: list[str] = []
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            for i in range(REQUESTS):
                ids += _predict(http, i, x[8 * i:8 * (i + 1)])
        server.kill()
        assert len(set(ids)) == 8 * REQUESTS
        assert server.run_directories() == 1  # the killed server could not remove its own
        server.start()
        assert server.run_directories() == 1  # the new server's: the start removed the killed one's
        server.wait_drained(lambda: count_predictions(database_url), timeout=60)
        stored = read_stored(database_url)
    finally:
        server.stop()
    assert server.run_directories() == 0
    missing = [p for p in ids if p not in stored.prediction_ids]
    assert not missing, f"{len(missing)} of {len(ids)} returned prediction ids are not stored after the restart"
    assert stored.prediction_counts == len(stored.prediction_ids)
