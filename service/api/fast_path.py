"""The predict routes as plain ASGI, in front of FastAPI: ``POST /v1/models/{m}[/versions/{ref}]/predict`` and
``POST /v2/models/{m}[/versions/{v}]/infer`` (``service.app.CalibServe.__call__`` dispatches here).

FastAPI's routing, request object and dependency machinery cost more than scoring a small model (half of the
main thread in a profile at batch 1). These four routes need none of it: match the path, read the raw body
(tritonclient sends no Content-Type) within the limit, make one call to the predictor, send its bytes. Every
other route stays FastAPI. Errors keep the one contract (``{"error": …}``, the domain error's status,
``Retry-After`` on 503), and an unexpected exception is answered as a complete 500 so the keep-alive
connection stays usable. The OpenAPI document describes these routes through ``openapi_paths``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping
from typing import Any, TypeVar

import orjson

from service.api.deadlines import Deadlines, Expired
from service.errors import ClientDisconnected, InvalidInput, PayloadTooLarge, RequestTimeout, ServiceError
from service.handlers.predictor import Rendered, WireCodec
from service.handlers.services import Services
from service.handlers.v1_codec import V1Codec

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Answer = tuple[int, Rendered, Mapping[str, str] | None]  # status, body, extra headers
T = TypeVar("T")

V1_CODEC = V1Codec()
BODY_DEADLINES = Deadlines()  # one timer per event loop for every request's body deadline


def match(path: str) -> tuple[str, str, str | None] | None:
    """("v1" | "v2", model, version-or-alias or None) for a predict/infer path, else None."""
    parts = path.split("/")
    if len(parts) not in (5, 7) or parts[0] != "" or parts[2] != "models" or not parts[3]:
        return None
    api, last = parts[1], parts[-1]
    if not ((api == "v1" and last == "predict") or (api == "v2" and last == "infer")):
        return None
    if len(parts) == 7:
        if parts[4] != "versions" or not parts[5]:
            return None
        return api, parts[3], parts[5]
    return api, parts[3], None


async def serve_predict(services: Services, matched: tuple[str, str, str | None], scope: Scope, receive: Receive,
                        send: Send) -> None:
    """Answer one matched predict/infer request: one call to the predictor, its bytes or ``{"error"}``."""
    api, model, ref = matched
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    limit, timeout = services.settings.max_body_bytes, services.settings.body_timeout_seconds
    try:
        rendered = await services.predictor.predict(codec_for(services, api), model, ref,
                                                    lambda: read_body(receive, headers, limit, timeout), headers)
    except ClientDisconnected:
        return
    except Exception as exc:
        await respond(send, *failure(exc, scope["path"]))
        return
    await respond(send, 200, rendered, rendered.headers)


def answer_now(services: Services, matched: tuple[str, str, str | None], headers: Mapping[str, str],
               body: bytes, path: str) -> Answer:
    """The same answer, synchronously, for a body already read and a request ``Predictor.inline`` accepts:
    the direct path of ``api/protocol.py``, which answers from the HTTP parser's callbacks."""
    api, model, ref = matched

    async def given() -> bytes:
        return body

    try:
        rendered = run_now(services.predictor.predict(codec_for(services, api), model, ref, given, headers))
    except Exception as exc:
        return failure(exc, path)
    return 200, rendered, rendered.headers


def codec_for(services: Services, api: str) -> WireCodec[Any]:
    return V1_CODEC if api == "v1" else services.v2_codec


def failure(exc: Exception, path: str) -> Answer:
    """A domain error's status and ``{"error"}`` (``Retry-After`` on 503); anything else is a complete 500."""
    if isinstance(exc, ServiceError):
        return (exc.status_code, error_body(exc),
                {"retry-after": str(exc.retry_after)} if exc.retry_after is not None else None)
    log.error("unhandled error on %s", path, exc_info=exc)
    return 500, Rendered(orjson.dumps({"error": "internal error"})), None


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, here and now (no task, no loop iteration)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("the predict coroutine suspended: this request needed the ASGI path")


def error_body(exc: ServiceError) -> Rendered:
    return Rendered(orjson.dumps({"error": exc.message}))


async def read_body(receive: Receive, headers: dict[str, str], limit: int, timeout: float) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (declared or streamed), and with 408 when it has
    not all arrived within ``timeout`` seconds (a trickling client must not hold a connection for ever)."""
    try:
        return await BODY_DEADLINES.run(_receive_body(receive, headers, limit), timeout)
    except Expired:
        raise RequestTimeout(f"the request body did not arrive within {timeout:g} s") from None


async def _receive_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidInput(f"Content-Length {declared[:32]!r} is not a number of bytes")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("the client closed the connection before its body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(send: Send, status: int, rendered: Rendered, extra: Any = None) -> None:
    headers = [(b"content-type", rendered.media_type.encode()), (b"content-length", str(len(rendered.body)).encode())]
    if extra:
        headers += [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in dict(extra).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": rendered.body})
