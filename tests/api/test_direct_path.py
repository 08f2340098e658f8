"""The direct path of service/api/protocol.py on a live uvicorn: predict/infer answered from the parser's
callbacks with the bytes the ASGI fast path sends, and every request it must not take left to ASGI.

``serve_predict`` (the ASGI fast path) is wrapped to count its calls, so each test knows which path answered.
"""

from __future__ import annotations

import functools
import gzip
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

import service.app
from service.api.protocol import BoundedHttpToolsProtocol
from service.app import create_app
from service.settings import Settings
from tests.api.live import live_server, read_from, read_response, read_responses
from tests.conftest import migrated_database
from tests.testdata.tiny_models import write_linear

MAX_BODY = 4096
ROW = [0.5, -1.0, 2.0, 0.25]
PREDICT = "/v1/models/tiny/predict"


@pytest.fixture
def asgi_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = service.app.serve_predict

    async def counted(services: Any, matched: Any, scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await original(services, matched, scope, receive, send)

    monkeypatch.setattr(service.app, "serve_predict", counted)
    return calls


def _settings(tmp_path: Path, url: str, **extra: Any) -> Settings:
    repo = tmp_path / "models"
    write_linear(repo)
    batched = write_linear(repo, name="batched")
    (batched.parent / "config.json").write_text(json.dumps(
        {"dynamic_batching": {"max_batch_size": 8, "max_queue_delay_microseconds": 0}}))
    return Settings(database_url=url, model_repository=repo, spool_dir=tmp_path / "spool", ship_process=False,
                    max_body_bytes=MAX_BODY, body_timeout_seconds=0.5, log_flush_seconds=0.01, **extra)


@pytest.fixture
def settings_(tmp_path: Path) -> Iterator[Settings]:
    with migrated_database("sqlite", tmp_path) as url:
        yield _settings(tmp_path, url)


@pytest.fixture
def port(settings_: Settings) -> Iterator[int]:
    protocol = functools.partial(BoundedHttpToolsProtocol, header_timeout=5)
    with live_server(create_app(settings_), http=protocol, timeout_keep_alive=1, access_log=False) as p:
        yield p


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _post(path: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: x", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _predict_body(rows: list[list[float]] | None = None) -> bytes:
    return orjson.dumps({"instances": rows or [ROW]})


# the requests both paths must answer alike: (path, body, extra headers)
CASES = {
    "v1": (PREDICT, _predict_body(), ()),
    "v1 by version": ("/v1/models/tiny/versions/1/predict", _predict_body(), ()),
    "v2": ("/v2/models/tiny/infer", orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": ROW}]}), ()),
    "gzip": (PREDICT, gzip.compress(_predict_body()), ("Content-Encoding: gzip",)),
    "not JSON": (PREDICT, b"{nope", ()),
    "wrong width": (PREDICT, _predict_body([[1.0, 2.0]]), ()),
    "float32 overflow": (PREDICT, b'{"instances": [[1e39, 0, 0, 0]]}', ()),
    "unknown model": ("/v1/models/nope/predict", _predict_body(), ()),
    "unknown version": ("/v1/models/tiny/versions/9/predict", _predict_body(), ()),
    "Unicode digit version": ("/v1/models/tiny/versions/%D9%A1/predict", _predict_body(), ()),
    "declared too large": (PREDICT, b"x" * (MAX_BODY + 1), ()),
}


def _comparable(status: int, body: bytes) -> tuple[int, Any]:
    """Status and body with what differs per request (ids) taken out."""
    data = orjson.loads(body)
    for p in data.get("predictions", []):
        p.pop("prediction_id")
    data.get("parameters", {}).pop("prediction_ids", None)  # v2
    return status, data


@pytest.mark.parametrize("case", list(CASES))
def test_the_direct_path_answers_as_the_asgi_path_does(case: str, port: int, settings_: Settings,
                                                       asgi_calls: list[str]) -> None:
    path, body, headers = CASES[case]
    with _connect(port) as sock:
        sock.sendall(_post(path, body, *headers))
        status, got_headers, got = read_response(sock)
    direct = _comparable(status, got)
    took_asgi = bool(asgi_calls)
    other = settings_.model_copy(update={"spool_dir": settings_.spool_directory().parent / "spool-asgi"})
    with TestClient(create_app(other)) as client:  # the same request through the ASGI app, in-process
        r = client.post(path, content=body, headers=dict(h.split(": ", 1) for h in headers))
    assert direct == _comparable(r.status_code, r.content)
    assert got_headers["content-type"] == r.headers["content-type"]
    assert status >= 400 or direct[1]  # a 200 carries predictions
    assert not took_asgi or "%" in path  # a percent-encoded path is left to ASGI (it unquotes)


def test_ids_from_the_direct_path_are_stored(port: int, settings_: Settings, asgi_calls: list[str]) -> None:
    with _connect(port) as sock:
        ids = []
        for _ in range(5):
            sock.sendall(_post(PREDICT, _predict_body([ROW, ROW])))
            status, _, body = read_response(sock)
            assert status == 200
            ids += [p["prediction_id"] for p in orjson.loads(body)["predictions"]]
    assert asgi_calls == []
    engine = create_engine(settings_.database_url)
    deadline = time.monotonic() + 10
    stored: set[str] = set()
    while time.monotonic() < deadline and len(stored) < len(ids):
        with engine.connect() as conn:
            stored = {r[0] for r in conn.execute(text("SELECT id FROM predictions"))}
        time.sleep(0.05)
    engine.dispose()
    assert set(ids) <= stored and len(ids) == 10


def test_pipelined_requests_are_answered_in_order(port: int, asgi_calls: list[str]) -> None:
    """An ASGI request first, then two that could go direct: they wait their turn (ASGI), in order."""
    wire = (b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n" + _post(PREDICT, _predict_body())
            + _post("/v1/models/nope/predict", _predict_body()))
    with _connect(port) as sock:
        sock.sendall(wire)
        answers = read_responses(sock, 3)
    assert [a[0] for a in answers] == [200, 200, 404]
    assert orjson.loads(answers[0][2]) == {"live": True}
    assert "predictions" in orjson.loads(answers[1][2])
    assert asgi_calls == [PREDICT, "/v1/models/nope/predict"]


def test_pipelined_direct_requests_are_answered_in_order(port: int, asgi_calls: list[str]) -> None:
    wire = _post(PREDICT, _predict_body()) + _post("/v1/models/nope/predict", _predict_body()) + _post(
        PREDICT, _predict_body([ROW, ROW, ROW]))
    with _connect(port) as sock:
        sock.sendall(wire)
        answers = read_responses(sock, 3)
    assert [a[0] for a in answers] == [200, 404, 200]
    assert len(orjson.loads(answers[2][2])["predictions"]) == 3
    assert asgi_calls == []


@pytest.mark.parametrize("version, header", [("1.0", ""), ("1.1", "Connection: close")])
def test_a_request_that_ends_its_connection_gets_connection_close(port: int, version: str, header: str,
                                                                  asgi_calls: list[str]) -> None:
    with _connect(port) as sock:
        sock.sendall(_post(PREDICT, _predict_body(), *([header] if header else []), version=version))
        status, headers, _ = read_response(sock)
        assert status == 200 and headers["connection"] == "close"
        assert sock.recv(1) == b""  # closed by the server
    assert asgi_calls == []


def test_a_slow_request_pipelined_behind_a_direct_answer_is_not_cut_by_the_keep_alive_timeout(
        tmp_path: Path, asgi_calls: list[str]) -> None:
    """The direct answer arms the idle timeout (0.3 s); the next request, already begun in the same read, takes
    longer than that (its body arrives 0.8 s later) and must still be answered."""
    with migrated_database("sqlite", tmp_path) as url:
        app = create_app(_settings(tmp_path, url).model_copy(update={"body_timeout_seconds": 5.0}))
        with live_server(app, http=BoundedHttpToolsProtocol, timeout_keep_alive=0.3, access_log=False) as p, \
                _connect(p) as sock:
            body = orjson.dumps({"items": [{"prediction_id": "not-a-uuid", "label": 0}]})
            sock.sendall(_post(PREDICT, _predict_body())
                         + f"POST /v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body[:5])
            time.sleep(0.8)
            sock.sendall(body[5:])
            answers = read_responses(sock, 2)
    assert [a[0] for a in answers] == [200, 200] and asgi_calls == []
    assert orjson.loads(answers[1][2])["counts"] == {"invalid": 1}


def test_an_idle_keep_alive_connection_is_closed_after_a_direct_answer(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_post(PREDICT, _predict_body()))
        assert read_response(sock)[0] == 200
        started = time.monotonic()
        assert sock.recv(1) == b""  # timeout_keep_alive=1
        assert time.monotonic() - started < 3


def test_a_streamed_body_over_the_limit_gets_413_and_the_connection_stays_usable(port: int,
                                                                                asgi_calls: list[str]) -> None:
    chunk = b"x" * 1024
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    with _connect(port) as sock:
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                     + chunks)
        status, _, body = read_response(sock)
        assert status == 413 and "exceeds the limit of 4096 bytes" in orjson.loads(body)["error"]
        sock.sendall(_post(PREDICT, _predict_body()))  # the rest of the big body was read and ignored
        assert read_response(sock)[0] == 200
    assert asgi_calls == []


def test_a_chunked_body_within_the_limit_is_served(port: int, asgi_calls: list[str]) -> None:
    body = _predict_body([ROW] * 3)
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:])) + b"0\r\n\r\n"
    with _connect(port) as sock:
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + wire)
        status, _, got = read_response(sock)
    assert status == 200 and len(orjson.loads(got)["predictions"]) == 3 and asgi_calls == []


def test_a_trickled_body_gets_408_and_the_connection_is_closed(port: int, asgi_calls: list[str]) -> None:
    with _connect(port) as sock:
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"in".encode())
        started = time.monotonic()
        status, headers, body = read_response(sock)
        assert status == 408 and headers["connection"] == "close"
        assert "did not arrive within 0.5 s" in orjson.loads(body)["error"]
        assert 0.45 <= time.monotonic() - started < 2.0
        assert sock.recv(1) == b""
    assert asgi_calls == []


def test_a_refused_body_that_keeps_trickling_is_cut_off_at_the_body_deadline(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY * 10}\r\n\r\nxx".encode())
        status, _, body = read_response(sock)  # refused at once, from the declared length
        assert status == 413 and "exceeds the limit" in orjson.loads(body)["error"]
        started = time.monotonic()
        sock.sendall(b"x" * 100)  # the client goes on sending the refused body, slowly
        assert sock.recv(1) == b""  # closed once the body deadline passes, no second answer
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("why, path, header", [
    ("a batching model scores in a worker thread", "/v1/models/batched/predict", ""),
    ("Expect: 100-continue", PREDICT, "Expect: 100-continue"),
])
def test_requests_the_direct_path_must_not_take_go_to_asgi(port: int, asgi_calls: list[str], why: str, path: str,
                                                           header: str) -> None:
    with _connect(port) as sock:
        sock.sendall(_post(path, _predict_body(), *([header] if header else [])))
        stream = sock.makefile("rb")  # one buffered reader: the interim 100 and the answer may come in one read
        status, _, body = read_from(stream)
        if status == 100:  # the interim answer to Expect, then the real one
            status, _, body = read_from(stream)
    assert status == 200 and "predictions" in orjson.loads(body), why
    assert asgi_calls == [path], why


def test_a_per_client_cap_keeps_every_predict_on_asgi(tmp_path: Path, asgi_calls: list[str]) -> None:
    with migrated_database("sqlite", tmp_path) as url:
        app = create_app(_settings(tmp_path, url, max_concurrent_per_client=4))
        with live_server(app, http=BoundedHttpToolsProtocol, access_log=False) as p, _connect(p) as sock:
            sock.sendall(_post(PREDICT, _predict_body()))
            assert read_response(sock)[0] == 200
    assert asgi_calls == [PREDICT]
