"""Mixed client load for the fault programs, from several threads: predict batches of 1 and 16 on ``/v1``
and ``/v2``, and feedback (the true digit label) for ids returned earlier, with a few re-sent labels that
must come back ``duplicate``. Every outcome lands in a :class:`Ledger`.

The clients behave like a careful label source: a feedback batch that gets no answer (connection reset by
a kill), a 5xx or an ``unknown`` item is sent again later (a retried batch is safe by contract), so a
label is lost only if the service acknowledged it and the table does not hold it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import httpx
import numpy as np

BODIES_PER_KIND = 64
UNKNOWN_RETRIES = 3  # an id answered `unknown` this many times is given up (counted as unknown)
MIX = {"v1/1": 3, "v1/16": 2, "v2/1": 3, "v2/16": 2, "feedback": 3}  # relative weights
PREDICT_KINDS = ("v1/1", "v1/16", "v2/1", "v2/16")
REFUSED, NO_ANSWER = 0, -1  # pseudo-statuses: connection refused (no server); sent, no answer (reset, timeout)


@dataclass(frozen=True)
class Call:
    phase: str
    kind: str  # v1/1, v1/16, v2/1, v2/16, feedback
    status: int  # HTTP status, or REFUSED / NO_ANSWER
    seconds: float
    retry_after: bool
    ended: float  # time.monotonic() when the answer (or the error) came


@dataclass
class Ledger:
    """What the clients were told, thread-safe: the programs compare it with the tables afterwards."""

    phase: str = "load"
    generation: int = 1  # which server process is up (set by the program at each restart)
    calls: list[Call] = field(default_factory=list)
    returned: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (generation, phase) that returned it
    truth: dict[str, int] = field(default_factory=dict)  # prediction id -> true label
    acked: dict[str, int] = field(default_factory=dict)  # label acknowledged accepted/duplicate
    acked_ids: list[str] = field(default_factory=list)  # the same ids in order, to pick re-sends from
    statuses: Counter[str] = field(default_factory=Counter)  # per feedback item
    pending: deque[tuple[str, int]] = field(default_factory=deque)  # (id, unknown answers so far)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def add_predictions(self, ids: list[str], labels: list[int]) -> None:
        with self.lock:
            for pid, label in zip(ids, labels, strict=True):
                self.returned[pid] = (self.generation, self.phase)
                self.truth[pid] = label
                self.pending.append((pid, 0))

    def take(self, n: int) -> list[tuple[str, int]]:
        with self.lock:
            return [self.pending.popleft() for _ in range(min(n, len(self.pending)))]

    def put_back(self, items: list[tuple[str, int]], *, later: bool = False) -> None:
        """A failed batch is retried next; an ``unknown`` item ``later`` (its row may still be shipping)."""
        with self.lock:
            if later:
                self.pending.extend(items)
            else:
                self.pending.extendleft(reversed(items))

    def phase_calls(self, phase: str, kinds: tuple[str, ...]) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.phase == phase and c.kind in kinds]


def summarize(calls: list[Call]) -> tuple[Counter[int], float, float]:
    """(status counts, p50 ms, p99 ms of the answered calls)."""
    answered = [c.seconds * 1e3 for c in calls if c.status > 0]
    p50, p99 = (np.percentile(answered, [50, 99]).tolist() if answered else (float("nan"), float("nan")))
    return Counter(c.status for c in calls), float(p50), float(p99)


def _bodies(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> dict[str, list[tuple[bytes, list[int]]]]:
    out: dict[str, list[tuple[bytes, list[int]]]] = {}
    for kind in PREDICT_KINDS:
        api, batch = kind.split("/")
        out[kind] = []
        for _ in range(BODIES_PER_KIND):
            idx = rng.integers(0, len(x), size=int(batch))
            rows = x[idx]
            if api == "v1":
                body = {"instances": rows.tolist()}
            else:
                body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32",
                                    "data": rows.ravel().tolist()}], "outputs": [{"name": "probabilities"}]}
            out[kind].append((json.dumps(body).encode(), [int(v) for v in y[idx]]))
    return out


def _seconds(retry_after: str | None) -> float:
    """Retry-After in seconds (the HTTP-date form, or none, counts as 0.1 s: we only cap the client's pause)."""
    try:
        return max(float(retry_after or "0.1"), 0.0)
    except ValueError:
        return 0.1


class LoadClients:
    """``clients`` threads against ``base_url`` until :meth:`stop`."""

    def __init__(self, base_url: str, ledger: Ledger, x: np.ndarray, y: np.ndarray, *, clients: int = 4,
                 seed: int = 0) -> None:
        self.base_url = base_url
        self.ledger = ledger
        self.bodies = _bodies(x, y, np.random.default_rng(seed))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(seed + i,), daemon=True) for i in range(clients)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        kinds, weights = list(MIX), list(MIX.values())
        with httpx.Client(base_url=self.base_url, timeout=10.0) as http:
            while not self._stop.is_set():
                kind = rng.choices(kinds, weights)[0]
                ok = self._feedback(http, rng) if kind == "feedback" else self._predict(http, kind, rng)
                if not ok:  # server down or refusing: do not spin on a dead port
                    time.sleep(0.05)

    def _call(self, http: httpx.Client, kind: str, path: str, body: bytes) -> httpx.Response | None:
        started = time.monotonic()
        phase = self.ledger.phase
        try:
            r = http.post(path, content=body, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            status = REFUSED if isinstance(exc, httpx.ConnectError) else NO_ANSWER
            self.ledger.record(Call(phase, kind, status, time.monotonic() - started, False, time.monotonic()))
            return None
        self.ledger.record(Call(phase, kind, r.status_code, time.monotonic() - started,
                                "retry-after" in r.headers, time.monotonic()))
        return r

    def _predict(self, http: httpx.Client, kind: str, rng: random.Random) -> bool:
        body, labels = rng.choice(self.bodies[kind])
        path = "/v1/models/digits/predict" if kind.startswith("v1") else "/v2/models/digits/infer"
        r = self._call(http, kind, path, body)
        if r is None or r.status_code != 200:
            return False
        data = r.json()
        ids = ([p["prediction_id"] for p in data["predictions"]] if kind.startswith("v1")
               else str(data["parameters"]["prediction_ids"]).split(","))
        self.ledger.add_predictions(ids, labels)
        return True

    def _feedback(self, http: httpx.Client, rng: random.Random) -> bool:
        items = self.ledger.take(rng.randint(1, 16))
        with self.ledger.lock:  # one label already acknowledged, now and then: it must come back `duplicate`
            resend = [rng.choice(self.ledger.acked_ids)] if self.ledger.acked_ids and rng.random() < 0.2 else []
        if not items and not resend:
            return True
        sent = [pid for pid, _ in items] + resend
        body = json.dumps({"items": [{"prediction_id": p, "label": self.ledger.truth[p]} for p in sent]}).encode()
        r = self._call(http, "feedback", "/v1/feedback", body)
        if r is None or r.status_code != 200:  # no answer or refused: the batch is retried next
            self.ledger.put_back(items)
            if r is not None and r.status_code == 503:
                time.sleep(min(_seconds(r.headers.get("retry-after")), 1.0))
            return False
        answers = r.json()["items"]
        retry, attempts_of = [], dict(items)
        with self.ledger.lock:
            for pid, answer in zip(sent, answers, strict=True):
                status = answer["status"]
                if status in ("accepted", "duplicate"):
                    if pid not in self.ledger.acked:
                        self.ledger.acked_ids.append(pid)
                    self.ledger.acked[pid] = self.ledger.truth[pid]
                attempts = attempts_of.get(pid)
                if status == "unknown" and attempts is not None and attempts + 1 < UNKNOWN_RETRIES:
                    retry.append((pid, attempts + 1))
                    continue
                self.ledger.statuses[status] += 1
        self.ledger.put_back(retry, later=True)
        return True
