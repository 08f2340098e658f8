"""uvicorn's httptools protocol with two fixes that an ASGI app cannot make, because they happen before it:

* a header deadline: uvicorn arms no timer until a first response, so a client that opens a connection
  and trickles (or never finishes) its request head holds it for ever; here the head must be complete
  within ``header_timeout`` seconds or the connection is closed (the body has ``read_body``'s deadline);
* a bound on the request head (``MAX_HEAD_BYTES`` of URL and headers: httptools itself has none);
* the parser's 400 for a malformed request (a bad ``Content-Length``, a broken request line) is
  ``{"error": …}`` JSON like every other error, instead of plain text;
* the direct path: a predict/infer request that ``Predictor.inline`` accepts is answered from the parser's
  callbacks, with the same bytes the ASGI fast path would send, but without an ASGI cycle, task, scope or
  messages (−13 to −17 % of the event loop's CPU per batch-1 request). Everything else, and any request that
  could not keep its order or its guarantees here (pipelined behind an ASGI response, ``Expect:
  100-continue``, a paused writer, the access log or a per-client cap on), takes the ASGI path.

Used by ``calibserve serve`` (``uvicorn.run(http=…)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.api.fast_path import answer_now, match
from service.errors import PayloadTooLarge, RequestTimeout, ServiceError
from service.handlers.predictor import Rendered
from service.handlers.services import Services

MAX_HEAD_BYTES = 64 * 1024


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools turns it into the parser error uvicorn answers with a 400."""


class DirectRequest:
    """A predict/infer request on the direct path, from its head to its answer."""

    __slots__ = ("path", "matched", "services", "keep_alive", "chunks", "size", "answered")

    def __init__(self, path: str, matched: tuple[str, str, str | None], services: Services,
                 keep_alive: bool) -> None:
        self.path = path
        self.matched = matched
        self.services = services
        self.keep_alive = keep_alive
        self.chunks: list[bytes] = []
        self.size = 0
        self.answered = False  # an early error (413, 408) went out: the rest of the body is ignored


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_head = False  # a request head has begun and is not complete yet
        self._direct: DirectRequest | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._app = _direct_app(self.app) if not self.config.access_log and self.limit_concurrency is None else None

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
        self._direct = None
        self._stop_body_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # a head still incomplete after this read must complete in time; a head that arrived whole (nearly
        # every request) never costs a timer (call_later and cancel were ~5 µs of each request)
        if self._in_head and self._head_deadline is None and not self.transport.is_closing():
            self._arm()
        # the same for a direct request's body (the ASGI path has ``read_body``'s deadline)
        direct = self._direct
        if direct is not None and self._body_deadline is None and not self.transport.is_closing():
            self._body_deadline = self.loop.call_later(direct.services.settings.body_timeout_seconds,
                                                       self._body_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._in_head = True
        # a request has begun, so the connection is not idle: a direct answer armed the keep-alive timeout, and a
        # request pipelined right behind it (in the same read, so no ``data_received`` cancels it) may take longer
        self._unset_keepalive_if_required()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        if self._app is None or not self._start_direct():
            super().on_headers_complete()

    # ---- the direct path ----------------------------------------------------------------------------
    def _start_direct(self) -> bool:
        """Take this request on the direct path if it is a predict/infer request that may be answered here."""
        parser = self.parser
        if (parser.get_method() != b"POST" or self.expect_100_continue or self.flow.write_paused
                or (self.cycle is not None and not self.cycle.response_complete)  # keep pipelined order
                or parser.should_upgrade()):
            return False
        services: Services | None = getattr(self._app.state, "services", None)  # type: ignore[union-attr]
        path = httptools.parse_url(self.url).path
        if services is None or b"%" in path or not path.isascii():
            return False
        text = path.decode("ascii")
        matched = match(text)
        if matched is None or not services.predictor.inline(matched[1], matched[2]):
            return False
        http_version = parser.get_http_version()
        self._direct = direct = DirectRequest(text, matched, services,
                                              http_version != "1.0" and parser.should_keep_alive())
        declared = self._header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > services.settings.max_body_bytes:
            self._fail(direct, PayloadTooLarge(f"request body of {declared.decode()} bytes exceeds the limit "
                                               f"of {services.settings.max_body_bytes} bytes"))
        return True

    def _header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def on_body(self, body: bytes) -> None:
        direct = self._direct
        if direct is None:
            super().on_body(body)
            return
        if direct.answered:
            return
        direct.size += len(body)
        limit = direct.services.settings.max_body_bytes
        if direct.size > limit:
            self._fail(direct, PayloadTooLarge(f"request body exceeds the limit of {limit} bytes"))
            return
        direct.chunks.append(body)

    def on_message_complete(self) -> None:
        direct = self._direct
        if direct is None:
            super().on_message_complete()
            return
        self._direct = None
        self._stop_body_deadline()
        if direct.answered:
            return
        chunks = direct.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers}
        status, rendered, extra = answer_now(direct.services, direct.matched, headers, body, direct.path)
        self._write(status, rendered, extra, direct.keep_alive)

    def _fail(self, direct: DirectRequest, exc: ServiceError) -> None:
        """An answer before the body is complete (413): sent now; the body still arriving is read and ignored."""
        direct.answered = True
        self._write(exc.status_code, Rendered(orjson.dumps({"error": exc.message})), None, direct.keep_alive)

    def _body_timed_out(self) -> None:
        """The body is still incomplete: 408 and close (a body already refused with 413: just close)."""
        self._body_deadline = None
        direct = self._direct
        if direct is None or self.transport.is_closing():
            return
        if direct.answered:
            self.transport.close()
            return
        timeout = direct.services.settings.body_timeout_seconds
        error = RequestTimeout(f"the request body did not arrive within {timeout:g} s")
        self._write(error.status_code, Rendered(orjson.dumps({"error": error.message})), None, False)

    def _stop_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _write(self, status: int, rendered: Rendered, extra: Mapping[str, str] | None, keep_alive: bool) -> None:
        """One response in one write, with uvicorn's default headers; then what uvicorn does once a response
        is complete (count it; close, or arm the keep-alive timeout)."""
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: ", rendered.media_type.encode(), b"\r\ncontent-length: ",
                 str(len(rendered.body)).encode(), b"\r\n"]
        if extra:
            for key, text in extra.items():
                head += [key.encode("latin-1"), b": ", str(text).encode("latin-1"), b"\r\n"]
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head += [b"\r\n", rendered.body]
        self.transport.write(b"".join(head))
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
            return
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps({"error": f"malformed HTTP request: {msg}"})
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def _direct_app(app: Any) -> Any:
    """The calibserve app inside uvicorn's wrappers (proxy headers, …), if it allows the direct path: no
    per-client cap (it counts ASGI requests per client)."""
    for _ in range(8):
        if hasattr(app, "direct_path"):
            return app if app.direct_path() else None
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None
