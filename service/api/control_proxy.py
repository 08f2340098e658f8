"""Feedback and the calibration queries, forwarded to the control process (``service/control_process.py``).

Under a predict load that keeps this event loop busy, a feedback commit or a window query run here waits for
the GIL and for loop iterations: at ~2,000 predictions/s on 2 cores, feedback p99 was 137–169 ms and a
calibration window 84–109 ms with their own CPU at 30 ms (docs/reliability.md, stop 22). The control process
runs them on its own interpreter; this process only relays bytes over a Unix socket. HTTP/1.1 on the socket
is spoken with ``h11`` (uvicorn's own parser, already installed): a sans-IO state machine, with a small pool of
keep-alive connections.

A label may name a prediction still in *this* process's spool, which the control process cannot ship. Ids are
UUIDv7, so their time says whether ``PredictionWriter.may_hold`` them; then this process flushes its writer
before forwarding, and the label is never answered ``unknown`` for a prediction it served.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h11
import orjson

from service.api.fast_path import Receive, Scope, Send, failure, read_body
from service.db.writer import PredictionWriter
from service.errors import ClientDisconnected, Retryable
from service.handlers.ids import uuid7_seconds

FEEDBACK_PATH = "/v1/feedback"
QUERY_PATH = re.compile(r"/v1/models/[^/]+/versions/[^/]+/(calibration|calibrators|label_shift|shadows"
                        r"|calibrators/[^/]+/compare)")
# hop-by-hop, or recomputed for the body as forwarded
NOT_FORWARDED = frozenset({b"host", b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
                           b"expect", b"upgrade", b"te", b"trailer", b"proxy-connection"})
SERVER_ADDED = frozenset({b"date", b"server"})
MAX_IDLE = 16  # pooled keep-alive connections to the control process
CHUNK = 65536


class ControlUnreachable(Retryable):
    """The control process does not answer (starting, restarting after a crash): retry shortly."""

    status_code = 503


class ControlProxy:
    def __init__(self, socket_path: Path, *, timeout: float, retry_after: int) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.retry_after = retry_after
        self._idle: list[_Connection] = []

    @staticmethod
    def claims(method: str, path: str) -> bool:
        return (method == "POST" and path == FEEDBACK_PATH) or (method == "GET" and QUERY_PATH.fullmatch(path)
                                                                is not None)

    async def forward(self, scope: Scope, receive: Receive, send: Send, writer: PredictionWriter, *,
                      limit: int, body_timeout: float) -> None:
        """Relay one request and its answer; ``{"error"}`` + 503 + ``Retry-After`` if the control process is away."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await read_body(receive, headers, limit, body_timeout) if scope["method"] == "POST" else b""
            if body and may_name_spooled(body, headers, writer):
                # the answer must not wait on a dead database: a failed round ends the wait, and the control
                # process then answers those ids `unknown` (retryable) or the outage itself
                await asyncio.to_thread(writer.flush, until_outage=True)
            status, reply_headers, reply = await self._exchange(scope, body)
        except ClientDisconnected:
            return
        except Exception as exc:
            status, rendered, extra = failure(exc, scope["path"])
            reply_headers = [(b"content-type", rendered.media_type.encode())]
            reply_headers += [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in dict(extra or {}).items()]
            reply = rendered.body
        # uvicorn adds its own date and server headers to what this process sends
        reply_headers = [(k, v) for k, v in reply_headers if k.lower() not in NOT_FORWARDED | SERVER_ADDED]
        reply_headers.append((b"content-length", str(len(reply)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": reply_headers})
        await send({"type": "http.response.body", "body": reply})

    async def reachable(self) -> bool:
        """Whether the control process accepts a connection now (readiness reports it)."""
        try:
            _, writer = await asyncio.open_unix_connection(str(self.socket_path))
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()

    async def _exchange(self, scope: Scope, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request on a pooled connection; a pooled one the control process has closed (idle, restarted) is
        retried once on a new connection. Safe for these routes: a repeated label is answered ``duplicate``."""
        # the path as the client sent it (percent-encoded): the decoded one may hold any character
        raw = scope.get("raw_path") or urllib.parse.quote(scope["path"]).encode("ascii")
        target = raw + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in NOT_FORWARDED]
        headers += [(b"host", b"calibserve-control"), (b"content-length", str(len(body)).encode())]
        request = h11.Request(method=scope["method"], target=target, headers=headers)
        try:
            while self._idle:
                connection = self._idle.pop()
                try:
                    return await self._answer(connection, request, body)
                except TimeoutError:  # it took the request and did not answer: not retried
                    raise
                except (OSError, EOFError, h11.ProtocolError):  # closed while idle: try the next, or a new one
                    continue
            connection = await _Connection.open(self.socket_path)
            return await self._answer(connection, request, body)
        except TimeoutError:  # before OSError, of which it is a subclass
            raise ControlUnreachable(f"the control process did not answer within {self.timeout:g} s; retry "
                                     "shortly", self.retry_after) from None
        except (OSError, EOFError, h11.ProtocolError) as exc:
            raise ControlUnreachable(f"the control process does not answer ({type(exc).__name__}); retry "
                                     "shortly", self.retry_after) from None

    async def _answer(self, connection: _Connection, request: h11.Request,
                      body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        try:
            answer = await asyncio.wait_for(connection.round_trip(request, body), self.timeout)
        except BaseException:
            await connection.close()
            raise
        if connection.reusable() and len(self._idle) < MAX_IDLE:
            self._idle.append(connection)
        else:
            await connection.close()
        return answer


def may_name_spooled(body: bytes, headers: Mapping[str, str], writer: PredictionWriter) -> bool:
    """Whether a feedback body may name a prediction this process has not shipped yet. A body this process
    cannot read cheaply (compressed, malformed) is assumed to: a flush is harmless, an ``unknown`` is not."""
    if headers.get("content-encoding", "identity") != "identity":
        return True
    try:
        items: Any = orjson.loads(body).get("items")
    except (orjson.JSONDecodeError, AttributeError):
        return False  # the control process answers the 400
    if not isinstance(items, list):
        return False
    for item in items:
        pid = item.get("prediction_id") if isinstance(item, dict) else None
        made = uuid7_seconds(pid) if isinstance(pid, str) else None
        if made is not None and writer.may_hold(made):
            return True
    return False


class _Connection:
    """One HTTP/1.1 keep-alive connection to the control process's Unix socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.state = h11.Connection(our_role=h11.CLIENT)

    @classmethod
    async def open(cls, path: Path) -> _Connection:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=CHUNK)
        return cls(reader, writer)

    async def round_trip(self, request: h11.Request, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        self.writer.write(self.state.send(request) + self.state.send(h11.Data(data=body)) if body else
                          self.state.send(request))
        self.writer.write(self.state.send(h11.EndOfMessage()))
        await self.writer.drain()
        response: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = self.state.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(CHUNK)
                if not data and response is None:
                    raise EOFError("the control process closed the connection")
                self.state.receive_data(data)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response.status_code, list(response.headers), b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("the control process closed the connection mid-answer")

    def reusable(self) -> bool:
        if self.state.our_state is h11.DONE and self.state.their_state is h11.DONE:
            self.state.start_next_cycle()
            return True
        return False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

