"""Which ids wait, and the look-up loop's schedule: a judge that records its calls stands in for the database
(the database path itself is tested in test_feedback_ingest.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio

from service.handlers.feedback_recent import LATER, is_recent, look_again


def v7(seconds: float, tail: str = "000000000001") -> str:
    ms = f"{int(seconds * 1000):012x}"
    return f"{ms[:8]}-{ms[8:]}-7000-8000-{tail}"


@dataclass
class Result:
    prediction_id: str
    status: str


def test_only_a_recent_uuid7_waits() -> None:
    now = 1_765_100_000.0
    assert is_recent(v7(now - 0.5), 1.0, now)
    assert not is_recent(v7(now - 1.5), 1.0, now)  # old enough: its sibling has shipped it, or never will
    assert not is_recent(v7(now + 3600), 1.0, now)  # a time in the future: forged or skewed
    assert not is_recent("0b5f7b0e-2d5e-4c8e-9f00-112233445566", 1.0, now)  # a UUIDv4 carries no time
    assert not is_recent(v7(now - 0.5), 0.0, now)  # the wait turned off


def test_later_items_are_judged_again_until_found_and_only_they() -> None:
    now = time.time()
    items: list[tuple[Any, Any]] = [(v7(now, "000000000001"), 0), (v7(now, "000000000002"), 1), ("x", 0)]
    first = [Result(items[0][0], LATER), Result(items[1][0], LATER), Result("x", "invalid")]
    calls: list[tuple[list[Any], bool, float]] = []

    async def judge(again: list[tuple[Any, Any]], may_wait: bool) -> list[Result]:
        calls.append(([pid for pid, _ in again], may_wait, time.monotonic()))
        if len(calls) == 1:  # the sibling has shipped the first one only
            return [Result(again[0][0], "accepted"), Result(again[1][0], LATER)]
        return [Result(pid, "accepted") for pid, _ in again]

    started = time.monotonic()
    out = anyio.run(look_again, first, items, 5.0, judge)
    assert [r.status for r in out] == ["accepted", "accepted", "invalid"]
    assert [c[0] for c in calls] == [[items[0][0], items[1][0]], [items[1][0]]]
    assert [c[1] for c in calls] == [True, True]
    assert 0.09 < calls[0][2] - started < 0.3 and 0.19 < calls[1][2] - calls[0][2] < 0.4  # 0.1 s, then 0.2 s


def test_the_last_look_answers_for_good_when_the_prediction_is_old_enough() -> None:
    pid = v7(time.time() - 0.25)  # 0.25 s old, the wait 0.4 s: one pause of 0.1, then the last of ≈ 0.05
    calls: list[bool] = []

    async def judge(again: list[tuple[Any, Any]], may_wait: bool) -> list[Result]:
        calls.append(may_wait)
        return [Result(pid, LATER if may_wait else "unknown")]

    out = anyio.run(look_again, [Result(pid, LATER)], [(pid, 0)], 0.4, judge)
    assert out[0].status == "unknown" and calls[-1] is False and len(calls) <= 3
