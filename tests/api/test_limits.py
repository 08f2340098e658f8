"""service/api/limits.py: the per-client cap on requests in flight (off by default) answers 429 +
Retry-After beyond the cap, and frees the slot when a request ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from service.api.limits import ClientConcurrencyLimit
from service.app import create_app
from service.settings import Settings


async def _slow_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    await asyncio.sleep(0.3)
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


def test_beyond_the_cap_is_429_and_slots_are_freed() -> None:
    limited = ClientConcurrencyLimit(_slow_app, limit=2)  # type: ignore[arg-type]

    async def run() -> tuple[list[int], int, dict[str, int]]:
        transport = httpx.ASGITransport(app=limited, client=("10.0.0.1", 1234))
        other = httpx.ASGITransport(app=limited, client=("10.0.0.2", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as a, \
                httpx.AsyncClient(transport=other, base_url="http://t") as b:
            first = await asyncio.gather(*(a.get("/") for _ in range(4)), b.get("/"))
            again = await a.get("/")
        return [r.status_code for r in first], again.status_code, dict(limited.in_flight)

    statuses, again, in_flight = asyncio.run(run())
    assert sorted(statuses[:4]) == [200, 200, 429, 429] and statuses[4] == 200  # the other client is not capped
    assert again == 200 and in_flight == {}


def test_the_cap_is_off_by_default_and_wraps_the_whole_app_when_configured(tmp_path: Path) -> None:
    """The whole app, so the predict fast path (answered before FastAPI's middleware) is capped too."""
    assert create_app(Settings(model_repository=tmp_path)).limit is None  # type: ignore[attr-defined]
    limit = create_app(Settings(model_repository=tmp_path, max_concurrent_per_client=8)).limit  # type: ignore[attr-defined]
    assert isinstance(limit, ClientConcurrencyLimit) and limit.limit == 8
