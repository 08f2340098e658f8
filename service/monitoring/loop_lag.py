"""Event-loop lag: how late the loop runs a timer that is due, sampled every ``interval`` seconds.

Every step of a request (its first callback, each return from a worker thread) waits for the loop to finish
what it is doing; this says how long, so a slow request can be told apart from a saturated loop
(docs/reliability.md, stop 21, measures both under predict load). A sleeping task measures it for the price of
a few wake-ups a second. The clock is ``perf_counter``: uvloop's ``loop.time()`` is read once per loop
iteration, so it would hide the lag.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def sample_loop_lag(observe: Callable[[float], None], interval: float) -> None:
    """Observe the lag of each ``interval``-second sleep until cancelled."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(interval)
        observe(max(time.perf_counter() - started - interval, 0.0))
