"""(a) The Python ceiling: the hand-written V2 JSON endpoint as a plain ASGI callable, no framework.

Run: ``BASELINE_MODEL=model.onnx uvicorn bench.baseline_asgi:app --http httptools --no-access-log``.
``POST /v2/models/digits/infer`` (any path ending in ``/infer``) and ``GET /health``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bench.serve.handwritten import from_environment

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

model = from_environment()
JSON_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":  # nothing to set up: the session loaded at import
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] == "POST" and scope["path"].endswith("/infer"):
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        status, body = model.infer(b"".join(chunks))
    elif scope["path"] == "/health":
        status, body = 200, b'{"ok":true}'
    else:
        status, body = 404, b'{"error":"not found"}'
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})
