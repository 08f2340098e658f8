"""service/api/protocol.py and read_body's deadline, on a live uvicorn: a malformed request head gets a
JSON 400, a head or body that never completes is cut off within its bound (slowloris)."""

from __future__ import annotations

import functools
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.hostile import closed_within
from service.api.protocol import BoundedHttpToolsProtocol
from service.app import create_app
from service.settings import Settings
from tests.api.live import live_server, read_response, request
from tests.conftest import migrated_database

HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5


@pytest.fixture
def port(tmp_path: Path, model_repository: Path) -> Any:
    with migrated_database("sqlite", tmp_path) as url:
        settings = Settings(database_url=url, model_repository=model_repository, body_timeout_seconds=BODY_TIMEOUT)
        protocol = functools.partial(BoundedHttpToolsProtocol, header_timeout=HEAD_TIMEOUT)
        with live_server(create_app(settings), http=protocol, timeout_keep_alive=1) as p:
            yield p


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


@pytest.mark.parametrize("head", [
    b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    b"GET /v2?" + b"q" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_a_malformed_head_gets_a_json_400(port: int, head: bytes) -> None:
    with _connect(port) as sock:
        sock.sendall(head)
        status, headers, body = read_response(sock)
    assert status == 400 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["error"].startswith("malformed HTTP request")


def test_a_silent_connection_is_closed_after_the_head_deadline(port: int) -> None:
    with _connect(port) as sock:
        waited = closed_within(sock, HEAD_TIMEOUT + 3)
    assert waited is not None and waited < HEAD_TIMEOUT + 1


def test_a_trickled_head_is_closed_after_the_head_deadline(port: int) -> None:
    with _connect(port) as sock:
        started = time.monotonic()
        for piece in (b"GET /v2/health/live HTTP/1.1\r\n", b"Host: x\r\n", b"X-Slow: 1\r\n"):
            sock.sendall(piece)  # each byte would reset an idle timer; the head deadline does not move
            time.sleep(HEAD_TIMEOUT / 4)
        waited = closed_within(sock, HEAD_TIMEOUT + 3)
        assert waited is not None and time.monotonic() - started < HEAD_TIMEOUT + 1.5


def test_a_trickled_body_gets_408_within_the_body_deadline(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"items\"")
        started = time.monotonic()
        status, _, body = read_response(sock)
        assert status == 408 and "did not arrive within 0.5 s" in orjson.loads(body)["error"]
        assert time.monotonic() - started < BODY_TIMEOUT + 1.5


@pytest.mark.parametrize("path", [b"/v1/models/digits/predict", b"/v2/models/digits/infer"])
def test_a_trickled_predict_body_gets_408_and_the_next_request_its_own_deadline(port: int, path: bytes) -> None:
    """The fast path's deadline (``api/deadlines.py``, one timer per loop): fires within a tick of the bound,
    and a request served after it on the same loop is not cut short by the expired one."""
    with _connect(port) as sock:
        sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in")
        started = time.monotonic()
        status, _, body = read_response(sock)
        waited = time.monotonic() - started
        assert status == 408 and "did not arrive within 0.5 s" in orjson.loads(body)["error"]
        assert BODY_TIMEOUT - 0.05 <= waited < BODY_TIMEOUT + 1.5
    with _connect(port) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200


def test_keep_alive_requests_each_get_a_fresh_head_deadline(port: int) -> None:
    with _connect(port) as sock:
        for _ in range(3):
            status, _, _ = request(sock, "GET", "/v2/health/live")
            assert status == 200
            time.sleep(HEAD_TIMEOUT / 2)
