"""service/monitoring/loop_lag.py: the sampler sees a loop that is blocked, and only then."""

from __future__ import annotations

import asyncio
import time

from service.monitoring.loop_lag import sample_loop_lag


def test_a_blocked_event_loop_shows_as_lag_of_about_the_blocking_time() -> None:
    observed: list[float] = []

    async def scenario() -> None:
        sampler = asyncio.get_running_loop().create_task(sample_loop_lag(observed.append, 0.01))
        await asyncio.sleep(0.1)  # an idle loop: every timer runs about on time
        idle = len(observed)
        time.sleep(0.25)  # a callback that holds the loop (what a burst of requests does)
        await asyncio.sleep(0.05)
        sampler.cancel()
        assert idle >= 3, observed
        assert max(observed[:idle]) < 0.1, observed

    asyncio.run(scenario())
    assert 0.2 <= max(observed) < 1.0, observed
    assert min(observed) >= 0.0
