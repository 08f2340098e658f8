"""A cheap, cached database reachability probe for readiness: at most one ``SELECT 1`` per interval.

Readiness is polled by every load balancer and kubelet, often several times a second; a query per call
would add load exactly when the database is struggling. Callers get the last result while it is fresh,
and while another caller is re-probing (a probe against a black-holed host takes the connect timeout).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class ProbeResult:
    reachable: bool
    checked_at: float  # time.monotonic()
    error: str | None = None

    def describe(self) -> dict[str, object]:
        return {"reachable": self.reachable, "checked_seconds_ago": round(time.monotonic() - self.checked_at, 3),
                "error": self.error}


class DatabaseProbe:
    def __init__(self, engine: Engine, *, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._lock = threading.Lock()
        self._last: ProbeResult | None = None

    def check(self) -> ProbeResult:
        """The last result if younger than ``interval``, else a fresh probe (one at a time)."""
        last = self._last
        if last is not None and time.monotonic() - last.checked_at < self.interval:
            return last
        if not self._lock.acquire(blocking=last is None):
            assert last is not None
            return last  # someone is probing right now: do not queue behind a slow connect
        try:
            self._last = self._probe()
            return self._last
        finally:
            self._lock.release()

    def _probe(self) -> ProbeResult:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to answer SELECT 1 is "unreachable" for readiness
            first_line = (str(exc).splitlines() or [""])[0][:200]
            return ProbeResult(False, time.monotonic(), f"{type(exc).__name__}: {first_line}")
        return ProbeResult(True, time.monotonic())
