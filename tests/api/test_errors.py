"""service/api/errors.py: a true bug is a JSON 500 and the keep-alive connection survives it (Starlette's
ServerErrorMiddleware re-raises, and uvicorn then closes the connection); database errors map to 503."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError

from service.app import create_app
from service.settings import Settings
from tests.api.live import live_server, request
from tests.conftest import migrated_database


def _buggy_app(settings: Settings, exc: Exception) -> Any:
    app = create_app(settings)

    async def boom() -> None:
        raise exc

    app.add_api_route("/test/boom", boom, methods=["GET"])
    return app


@pytest.fixture
def sqlite_settings(tmp_path: Path, model_repository: Path) -> Any:
    with migrated_database("sqlite", tmp_path) as url:
        yield Settings(database_url=url, model_repository=model_repository, calibrator_poll_seconds=0.2)


def test_a_bug_is_a_json_500_and_the_connection_stays_usable(sqlite_settings: Settings) -> None:
    with live_server(_buggy_app(sqlite_settings, RuntimeError("a bug"))) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(3):  # the same socket, three times over
            status, headers, body = request(sock, "GET", "/test/boom")
            assert status == 500 and headers["content-type"] == "application/json"
            assert orjson.loads(body) == {"error": "internal error (RuntimeError)"}
            assert headers.get("connection") != "close"
            status, _, body = request(sock, "GET", "/v2/health/live")
            assert status == 200 and orjson.loads(body) == {"live": True}


@pytest.mark.parametrize("exc, status", [
    (OperationalError("SELECT 1", {}, Exception("connection refused")), 503),
    (IntegrityError("INSERT", {}, Exception("duplicate key")), 500),
])
def test_database_errors(sqlite_settings: Settings, exc: Exception, status: int) -> None:
    """Unreachable → 503 DatabaseUnavailable with Retry-After; any other database error is a bug (500)."""
    with TestClient(_buggy_app(sqlite_settings, exc)) as client:
        response = client.get("/test/boom")
    assert response.status_code == status and set(response.json()) == {"error"}
    if status == 503:
        assert response.headers["retry-after"] == str(sqlite_settings.database_retry_after_seconds)
        assert "database is unreachable" in response.json()["error"]
    else:
        assert "retry-after" not in response.headers
