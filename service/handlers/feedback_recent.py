"""Labels that name a prediction another worker or replica has not shipped yet.

This process can flush its own prediction log, not a sibling's. A label for a recent prediction (ids are
UUIDv7: their time says how old they are) that is missing even after that flush is judged ``LATER`` and looked
up again, after 0.1 s and then every 0.2 s, until it is found or the prediction is ``wait_seconds`` old; only
then is it ``unknown``. A sibling ships every ``log_flush_seconds`` (0.2 by default), so a label posted right
after its prediction is ``accepted``. The pauses are ``asyncio.sleep`` on the event loop: the group-commit
thread only does the look-ups, and only the request that named such an id waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from service.handlers.ids import uuid7_seconds

LATER = "later"  # internal: not found yet, recent enough to be looked up again (never answered, never counted)
LOOK_AGAIN = (0.1, 0.2)  # s: the first pause, then every later one
FUTURE_SLACK = 1.0  # s: an id made later than now + this carries a forged (or skewed) time and never waits


class Judged(Protocol):
    prediction_id: str
    status: str


R = TypeVar("R", bound=Judged)


def is_recent(prediction_id: str, wait_seconds: float, now: float) -> bool:
    """Whether the id is a UUIDv7 made less than ``wait_seconds`` before ``now`` (and not in the future)."""
    made = uuid7_seconds(prediction_id)
    return made is not None and now - wait_seconds < made <= now + FUTURE_SLACK


async def look_again(results: list[R], items: list[tuple[Any, Any]], wait_seconds: float,
                     judge: Callable[[list[tuple[Any, Any]], bool], Awaitable[list[R]]]) -> list[R]:
    """Replace each ``LATER`` result by a later look-up's: ``judge(items, may_wait)`` judges the items again,
    and with ``may_wait`` false it answers for good (found, or ``unknown``)."""
    later = [i for i, r in enumerate(results) if r.status == LATER]
    nominal = LOOK_AGAIN[0]
    deadline = time.monotonic() + wait_seconds  # however the wall clock moves meanwhile
    while later:
        ripe = max(uuid7_seconds(results[i].prediction_id) or 0.0 for i in later) + wait_seconds
        pause = min(nominal, ripe - time.time(), deadline - time.monotonic())
        last = pause < nominal  # the predictions are that old by then: judged for good
        await asyncio.sleep(max(0.0, pause))
        again = await judge([items[i] for i in later], not last)
        for i, result in zip(later, again, strict=True):
            results[i] = result
        later = [i for i in later if results[i].status == LATER]
        nominal = LOOK_AGAIN[1]
    return results
