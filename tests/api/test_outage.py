"""A database outage, for real: the test's own PostgreSQL database is DROPped mid-test (the server stays up for
the other tests), then re-created. Feedback, admin and calibration answer 503 + Retry-After, readiness says
why, and everything recovers without a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from service.app import create_app
from service.db.migrate import upgrade
from service.settings import Settings
from tests.conftest import ADMIN_TOKEN, _postgres_admin_engine, drop_postgres_database, fresh_postgres_database
from tests.factories import digits, ids_of, predict

PROBE_SECONDS = 0.2
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _calls(client: Any, pid: str) -> dict[str, Any]:
    return {
        "feedback": client.post("/v1/feedback", json={"items": [{"prediction_id": pid, "label": 1}]}),
        "calibration": client.get("/v1/models/digits/versions/1/calibration"),
        "history": client.get("/v1/models/digits/versions/1/calibrators"),
        "audit": client.get("/v1/admin/audit", headers=ADMIN),
        "activate": client.post("/v1/admin/models/digits/versions/1/calibrators/1/activate", headers=ADMIN),
    }


def _ready(client: Any) -> Any:
    time.sleep(PROBE_SECONDS * 1.5)  # past the cached probe
    return client.get("/v2/health/ready")


def test_database_outage_is_503_with_retry_after_and_recovers(postgres_available: bool,
                                                             model_repository: Path) -> None:
    url, name = fresh_postgres_database()
    try:
        upgrade(url)
        settings = Settings(database_url=url, model_repository=model_repository, admin_token=ADMIN_TOKEN,
                            database_probe_seconds=PROBE_SECONDS, database_retry_after_seconds=7,
                            log_flush_seconds=0.01, calibrator_poll_seconds=0.2, ready_requires_database=True)
        with TestClient(create_app(settings)) as client:
            x, _ = digits()
            pid = ids_of(predict(client, x[:1]))[0]
            assert client.app.state.services.writer.flush(timeout=30)  # shipped: the row dies with the database
            before = _ready(client)
            assert before.status_code == 200 and before.json()["database"]["reachable"] is True

            drop_postgres_database(name)  # WITH (FORCE): every pooled connection dies with it
            for route, response in _calls(client, pid).items():
                assert response.status_code == 503, (route, response.text)
                assert response.headers["retry-after"] == "7", route
                assert "database is unreachable" in response.json()["error"], route
            down = _ready(client)
            assert down.status_code == 503
            assert down.json()["ready"] is False and down.json()["database"]["reachable"] is False
            assert down.json()["database"]["error"].startswith("OperationalError")

            engine = _postgres_admin_engine()
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            engine.dispose()
            upgrade(url)
            deadline = time.monotonic() + 10  # the card calibrator is re-registered by the background sync
            while client.get("/v1/models/digits/versions/1/calibrators").json().get("calibrators") in (None, []):
                assert time.monotonic() < deadline, "no recovery within 10 s"
                time.sleep(0.1)
            after = _calls(client, pid)
            assert after["feedback"].status_code == 200  # the row died with the database: per-item 'unknown'
            assert after["feedback"].json()["items"][0]["status"] == "unknown"
            assert {r: after[r].status_code for r in ("calibration", "history", "audit", "activate")} == {
                "calibration": 200, "history": 200, "audit": 200, "activate": 200}
            assert _ready(client).status_code == 200
    finally:
        drop_postgres_database(name)


def test_readiness_ignores_the_database_by_default(postgres_available: bool, model_repository: Path) -> None:
    """The spool keeps predictions through an outage, so by default the replica stays in the balancer."""
    url, name = fresh_postgres_database()
    try:
        upgrade(url)
        settings = Settings(database_url=url, model_repository=model_repository, database_probe_seconds=PROBE_SECONDS)
        with TestClient(create_app(settings)) as client:
            drop_postgres_database(name)
            down = _ready(client)
            assert down.status_code == 200 and down.json()["database"]["reachable"] is False
    finally:
        drop_postgres_database(name)
