"""Group commit: concurrent callers' prepared work committed in one transaction by one thread.

A one-label request costs an insert, three statistics upserts and a commit (a WAL flush). Requests that
arrive while a transaction runs are queued and handled together in the next one. A caller's own error
(its result is an exception) reaches that caller alone; if the shared transaction fails, each caller's
work is retried alone, so one caller's failure is never another caller's.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

Work = TypeVar("Work")
Result = TypeVar("Result")


class GroupCommit(Generic[Work, Result]):
    """``commit(works) -> results`` (one per work, in order) runs in this object's thread; a result that is an
    exception is raised to its caller alone. ``shared(exc)`` says a failure of the whole group is everyone's
    (an unreachable database): each caller gets it at once, instead of a retry alone that would wait for the
    same timeout once per caller."""

    def __init__(self, commit: Callable[[Sequence[Work]], list[Result | BaseException]], *, max_group: int,
                 name: str, shared: Callable[[BaseException], bool] = lambda exc: False) -> None:
        self.commit = commit
        self.shared = shared
        self.max_group = max_group
        self.queue: queue.Queue[tuple[Work, Future[Result]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread."""
        if self._thread.is_alive():
            self.queue.put(None)
            self._thread.join(timeout)

    def submit(self, work: Work) -> Future[Result]:
        future: Future[Result] = Future()
        self.queue.put((work, future))
        return future

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            group = [first]
            stopping = False
            while len(group) < self.max_group:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
            self._commit_group(group)
            if stopping:
                return

    def _commit_group(self, group: list[tuple[Work, Future[Result]]]) -> None:
        try:
            results = self.commit([work for work, _ in group])
        except BaseException as exc:
            if len(group) == 1 or self.shared(exc):
                for _, future in group:
                    future.set_exception(exc)
                return
            for item in group:  # alone, each caller gets its own outcome
                self._settle_alone(item)
            return
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result)

    def _settle_alone(self, item: tuple[Work, Future[Result]]) -> None:
        work, future = item
        try:
            (result,) = self.commit([work])
        except BaseException as exc:
            future.set_exception(exc)
            return
        _settle(future, result)


def _settle(future: Future[Result], result: Result | BaseException) -> None:
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
