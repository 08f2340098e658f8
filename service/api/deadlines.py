"""Body deadlines for the fast path: one timer per event loop, not one per request.

``anyio.fail_after`` costs ~17 µs a request (a cancel scope and a timer handle), ``asyncio.timeout`` ~6 µs
and a bare ``loop.call_later`` ~4 µs: at batch 1 that is several percent of the whole request. A request
here only registers its task and deadline in a dict (well under a microsecond); one ``tick`` per loop
cancels the tasks whose deadline has passed. A deadline therefore fires up to one tick late, which for a
slow-client guard (seconds) is immaterial.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")
TICK_SECONDS = 0.05


class Expired(Exception):
    """The awaited call passed its deadline."""


class Deadlines:
    """Cancel registered tasks past their deadline; ``await run(aw, timeout)`` raises ``Expired`` then."""

    def __init__(self, tick: float = TICK_SECONDS) -> None:
        self.tick = tick
        self._pending: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()  # those with a tick running

    async def run(self, awaitable: Awaitable[T], timeout: float) -> T:
        task: asyncio.Task[object] | None = asyncio.current_task()
        if task is None:  # not inside a task (never under an ASGI server): no deadline to enforce
            return await awaitable
        loop = task.get_loop()
        if loop not in self._loops:  # first call on this loop (tests start a new loop per client)
            self._loops.add(loop)
            loop.call_later(self.tick, self._scan, loop)
        self._pending[task] = time.monotonic() + timeout
        try:
            return await awaitable
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                if task.uncancel() == 0:  # our cancel only: nobody else wants the task to stop
                    raise Expired from None
            raise
        finally:
            self._pending.pop(task, None)
            self._expired.discard(task)

    def _scan(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        for task, deadline in list(self._pending.items()):
            if deadline <= now and task.get_loop() is loop:
                del self._pending[task]
                self._expired.add(task)
                task.cancel()
        loop.call_later(self.tick, self._scan, loop)
