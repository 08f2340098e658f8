"""``api/control_proxy.py``: which routes go to the control process, and when a label makes the serving
process flush its spool before forwarding (the forwarding itself: tests/e2e/test_control_process.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import orjson

from service.api.control_proxy import ControlProxy, may_name_spooled
from service.app import create_app
from service.db.engine import make_engine
from service.db.writer import PredictionWriter
from service.handlers.ids import uuid7_strings
from service.settings import Settings


def test_it_claims_feedback_and_the_calibration_queries_and_nothing_else(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", model_repository=tmp_path))
    claimed = set()
    for template, operations in app.openapi()["paths"].items():  # every documented operation
        path = re.sub(r"\{[^}]+\}", "x", template)
        claimed |= {(m.upper(), template) for m in operations if ControlProxy.claims(m.upper(), path)}
    base = "/v1/models/{model}/versions/{version}"
    assert claimed == {("POST", "/v1/feedback"), ("GET", f"{base}/calibration"), ("GET", f"{base}/calibrators"),
                       ("GET", f"{base}/label_shift"), ("GET", f"{base}/shadows"),
                       ("GET", f"{base}/calibrators/{{calibrator_version}}/compare")}
    assert not ControlProxy.claims("POST", "/v1/models/digits/predict")
    assert not ControlProxy.claims("GET", "/v1/models/a/b/versions/1/calibration")  # one segment per name


def body(*ids: object) -> bytes:
    return orjson.dumps({"items": [{"prediction_id": i, "label": 0} for i in ids]})


def test_a_label_for_an_id_made_after_the_last_shipping_round_asks_for_a_flush(tmp_path: Path) -> None:
    writer = PredictionWriter(make_engine(f"sqlite:///{tmp_path / 'x.db'}"), spool_dir=tmp_path)
    fresh = uuid7_strings(1)[0]
    made = int(fresh[:8] + fresh[9:13], 16) / 1000
    writer.shipped_before = made - 1.0  # the last completed round started a second before the id was made
    assert may_name_spooled(body("not-an-id", fresh), {}, writer)
    writer.shipped_before = made + 1.0  # a round that started after it shipped it
    assert not may_name_spooled(body(fresh), {}, writer)
    assert may_name_spooled(body(fresh), {"content-encoding": "gzip"}, writer)  # not read here: flush to be safe
    assert not may_name_spooled(b"{broken", {}, writer)  # the control process answers the 400
    assert not may_name_spooled(b"[1, 2]", {}, writer)
    assert not may_name_spooled(orjson.dumps({"items": "x"}), {}, writer)
    assert not may_name_spooled(body(17, None), {}, writer)


async def _forward(proxy: ControlProxy, writer: PredictionWriter) -> tuple[int, dict[bytes, bytes], bytes]:
    """One GET through the proxy, as the ASGI app would relay it; the status, headers and body sent back."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/models/m/versions/1/calibration", "query_string": b"",
             "headers": [(b"host", b"x")]}
    await proxy.forward(scope, receive, send, writer, limit=1 << 20, body_timeout=5)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def test_a_control_process_that_is_away_silent_or_hangs_up_gives_503_with_retry_after(tmp_path: Path) -> None:
    writer = PredictionWriter(make_engine(f"sqlite:///{tmp_path / 'x.db'}"), spool_dir=tmp_path)
    socket_path = tmp_path / "c.sock"

    async def scenario() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        proxy = ControlProxy(socket_path, timeout=0.5, retry_after=7)
        away = await _forward(proxy, writer)  # nothing listens on the socket

        release = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await reader.read(65536)
            await release.wait()  # reads the request, answers nothing until the proxy has given up
            w.close()

        server = await asyncio.start_unix_server(silent, str(socket_path))
        hung = await _forward(proxy, writer)
        release.set()
        server.close()
        await server.wait_closed()
        socket_path.unlink()

        async def hang_up(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await reader.read(65536)
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"half")  # then closes mid-body
            w.close()

        server = await asyncio.start_unix_server(hang_up, str(socket_path))
        cut = await _forward(proxy, writer)

        async def answers(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while await reader.read(65536):
                w.write(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 15\r\n"
                        b"date: x\r\n\r\n{\"error\": \"no\"}")

        server.close()
        await server.wait_closed()
        socket_path.unlink()
        server = await asyncio.start_unix_server(answers, str(socket_path))
        relayed = [await _forward(proxy, writer) for _ in range(2)]  # the second on the pooled connection
        await proxy.close()
        server.close()
        await server.wait_closed()
        return [away, hung, cut, *relayed]

    away, hung, cut, *relayed = asyncio.run(scenario())
    for status, headers, body in (away, hung, cut):
        assert status == 503 and headers[b"retry-after"] == b"7", (status, headers, body)
        assert "control process" in orjson.loads(body)["error"]
    assert "did not answer within 0.5 s" in orjson.loads(hung[2])["error"]
    for status, headers, body in relayed:  # the control process's answer, as it gave it
        assert status == 404 and orjson.loads(body) == {"error": "no"}
        assert headers[b"content-length"] == b"15" and b"date" not in headers  # uvicorn adds its own
