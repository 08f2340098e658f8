"""A /v1 request to a dynamically batched model waits in a worker thread, never on the event loop.

Before: /v1 called ``Batched.scores`` inline, so while a batch was being gathered (here: a 1 s queue
delay) the whole server stalled, health checks included; only /v2 used a thread.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import running_server
from tests.testdata.tiny_models import write_linear

pytestmark = pytest.mark.e2e


def test_v1_batching_does_not_block_health(database_url: str, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    version_dir = write_linear(repo)
    (version_dir.parent / "config.json").write_text(json.dumps(
        {"dynamic_batching": {"max_batch_size": 8, "max_queue_delay_microseconds": 1_000_000}}))
    finished: list[str] = []
    with running_server(database_url, repo) as base:
        def predict() -> None:
            r = httpx.post(f"{base}/v1/models/tiny/predict", json={"instances": [[1, 2, 3, 4]]}, timeout=30)
            assert r.status_code == 200, r.text
            finished.append("predict")

        worker = threading.Thread(target=predict)
        worker.start()
        time.sleep(0.3)  # the predict is now waiting for its batch to fill (1 s)
        assert httpx.get(f"{base}/v2/health/live", timeout=30).status_code == 200
        finished.append("health")
        worker.join(30)
    assert finished == ["health", "predict"]
