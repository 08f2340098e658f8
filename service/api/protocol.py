"""uvicorn's httptools protocol with two fixes that an ASGI app cannot make, because they happen before it:

* a header deadline: uvicorn arms no timer until a first response, so a client that opens a connection
  and trickles (or never finishes) its request head holds it for ever; here the head must be complete
  within ``header_timeout`` seconds or the connection is closed (the body has ``read_body``'s deadline);
* a bound on the request head (``MAX_HEAD_BYTES`` of URL and headers: httptools itself has none);
* the parser's 400 for a malformed request (a bad ``Content-Length``, a broken request line) is
  ``{"error": …}`` JSON like every other error, instead of plain text.

Used by ``calibserve serve`` (``uvicorn.run(http=…)``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools turns it into the parser error uvicorn answers with a 400."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_head = False  # a request head has begun and is not complete yet

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge(f"the request head exceeds {MAX_HEAD_BYTES} bytes")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # the first request head, or nothing at all, must arrive in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # a head still incomplete after this read must complete in time; a head that arrived whole (nearly
        # every request) never costs a timer (call_later and cancel were ~5 µs of each request)
        if self._in_head and self._head_deadline is None and not self.transport.is_closing():
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps({"error": f"malformed HTTP request: {msg}"})
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
