"""A per-client cap on requests in flight (``max_concurrent_per_client``; off when 0).

Pure ASGI, so it costs one dict update per request and sees every route, the hot ones included. The key
is the peer address: behind a proxy every client shares one address, so the cap belongs there instead.
"""

from __future__ import annotations

from collections import defaultdict

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response
from service.errors import TooManyRequests
from service.settings import Settings


class ClientConcurrencyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight: defaultdict[str, int] = defaultdict(int)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else ""
        if self.in_flight[key] >= self.limit:
            exc = TooManyRequests(f"this client already has {self.limit} requests in flight; retry after "
                                  "one of them finishes", retry_after=1)
            await error_response(exc)(scope, receive, send)
            return
        self.in_flight[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[key] -= 1
            if not self.in_flight[key]:
                del self.in_flight[key]  # bounded by the clients in flight, not by every client ever seen


def client_limit(app: ASGIApp, settings: Settings) -> ClientConcurrencyLimit | None:
    """The cap around ``app`` — the whole application, the predict fast path included — or None when off."""
    if settings.max_concurrent_per_client > 0:
        return ClientConcurrencyLimit(app, limit=settings.max_concurrent_per_client)
    return None
