"""Group commit: one caller's failure is never another caller's (before: one exception failed them all)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from service.handlers.group_commit import GroupCommit


def test_a_failing_work_fails_alone_and_the_others_commit() -> None:
    committed: list[list[str]] = []
    gate = threading.Event()

    def commit(works: Sequence[str]) -> list[str]:
        gate.wait(5)  # hold the first transaction so the others queue up behind it and form one group
        if "poison" in works:
            raise ValueError("bad work")
        committed.append(list(works))
        return [w.upper() for w in works]

    group: GroupCommit[str, str] = GroupCommit(commit, max_group=16, name="test-commit")
    group.start()
    first = group.submit("first")
    futures = {w: group.submit(w) for w in ("a", "poison", "b")}
    gate.set()
    assert first.result(5) == "FIRST"
    assert futures["a"].result(5) == "A" and futures["b"].result(5) == "B"
    with pytest.raises(ValueError, match="bad work"):
        futures["poison"].result(5)
    group.stop()
    assert ["a", "poison", "b"] not in committed  # the shared attempt failed as a whole, then each went alone
    assert ["a"] in committed and ["b"] in committed


def test_stop_commits_what_is_queued() -> None:
    seen: list[str] = []

    def commit(works: Sequence[str]) -> list[str]:
        seen.extend(works)
        return list(works)

    group: GroupCommit[str, str] = GroupCommit(commit, max_group=4, name="test-commit")
    futures = [group.submit(str(i)) for i in range(10)]  # queued before the thread starts
    group.start()
    group.stop()
    assert [f.result(1) for f in futures] == [str(i) for i in range(10)] and seen == [str(i) for i in range(10)]


def _gated(answer: Callable[[Sequence[str]], list[str | BaseException]],
           **options: Any) -> tuple[GroupCommit[str, str], threading.Event, list[list[str]]]:
    """A started group whose commits wait for ``gate`` (so submissions queue into one group), and the works of
    each call in order."""
    calls: list[list[str]] = []
    gate = threading.Event()

    def commit(works: Sequence[str]) -> list[str | BaseException]:
        gate.wait(5)
        calls.append(list(works))
        return answer(works)

    group: GroupCommit[str, str] = GroupCommit(commit, max_group=16, name="test-commit", **options)
    group.start()
    return group, gate, calls


def test_a_result_that_is_an_exception_reaches_its_caller_alone() -> None:
    """A caller's own error (its validation) is its answer; the group's transaction is not retried for it."""
    group, gate, calls = _gated(lambda works: [ValueError(f"{w} is invalid") if w.startswith("bad") else w.upper()
                                               for w in works])
    first = group.submit("first")
    futures = {w: group.submit(w) for w in ("a", "bad-1", "b")}
    gate.set()
    assert first.result(5) == "FIRST" and futures["a"].result(5) == "A" and futures["b"].result(5) == "B"
    with pytest.raises(ValueError, match="bad-1 is invalid"):
        futures["bad-1"].result(5)
    group.stop()
    # "first" may or may not have been taken alone before the others queued; nothing was retried alone
    assert [w for c in calls for w in c] == ["first", "a", "bad-1", "b"]


def test_a_shared_failure_reaches_every_caller_at_once() -> None:
    """An outage is everyone's: no retry alone per caller (each would wait for the same timeout again)."""

    def unreachable(works: Sequence[str]) -> list[str | BaseException]:
        raise ConnectionError("the database is unreachable")

    group, gate, calls = _gated(unreachable, shared=lambda exc: isinstance(exc, ConnectionError))
    futures = [group.submit(w) for w in ("a", "b", "c", "d")]
    gate.set()
    for future in futures:
        with pytest.raises(ConnectionError):
            future.result(5)
    group.stop()
    assert sorted(w for c in calls for w in c) == ["a", "b", "c", "d"]  # each attempted once: no retry alone
