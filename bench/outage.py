"""Outage: PostgreSQL stopped for 30 s under load (always restarted); statuses, latency, readiness, losses.

    python -m bench outage [--down 30] [--before 10] [--after 20] [--clients 4] [--repository DIR]
                        [--tree CHECKOUT] [--bare]

WARNING: this stops the PostgreSQL cluster 15/main that the whole machine shares (every other session's
connections are cut) for ``--down`` seconds. It refuses to run unless ``pg_lsclusters`` shows the cluster
online, and restarts it on every way out (``bench/faults_postgres.py``). Never run it from the test suite;
``python -m bench all`` leaves it out.

The real server runs on a fresh PostgreSQL database with a fixed spool directory, under the mixed load of
``bench/faults_load.py`` (clients retry unanswered or refused feedback, as a label source would). Per phase
(before / during / after the outage): predict and feedback status counts and p50/p99 latency, whether every
503 carried ``Retry-After``, and readiness status and body (polled every 0.5 s); then the recovery time
(first successful feedback after the restart) and, once the log has drained, ids returned vs rows stored.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sklearn.datasets import load_digits

from bench.faults_common import (
    ROOT,
    Server,
    Stored,
    commit_label,
    count_predictions,
    fresh_database,
    log_backlog,
    markdown_table,
    read_stored,
    repository_or_train,
)
from bench.faults_load import PREDICT_KINDS, Ledger, LoadClients, summarize
from bench.faults_postgres import cluster_status, postgres_stopped

PHASES = ("before", "during", "after")
MAX_DOWN = 120.0


class ReadinessPoller:
    """``GET /v2/health/ready`` every 0.5 s: (phase, status, body without the per-model section)."""

    def __init__(self, server: Server, ledger: Ledger) -> None:
        self.server, self.ledger = server, ledger
        self.samples: list[tuple[str, int, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            phase = self.ledger.phase
            try:
                status, body = self.server.readiness()
            except httpx.HTTPError:
                status, body = 0, {}
            self.samples.append((phase, status, {k: v for k, v in body.items() if k != "models"}))


def run(repository: Path, *, down: float, before: float, after: float, clients: int, work: Path,
        tree: Path, shipped: bool = True) -> tuple[Ledger, ReadinessPoller, Stored, dict[str, float]]:
    x, y = load_digits(return_X_y=True)
    times: dict[str, float] = {}
    with fresh_database("postgresql", work, tree) as url:
        server = Server(database_url=url, repository=repository, work=work, root=tree, shipped=shipped)
        ledger = Ledger(phase="before")
        try:
            server.start()
            load = LoadClients(server.base_url, ledger, x, y, clients=clients)
            poller = ReadinessPoller(server, ledger)
            load.start()
            poller.start()
            try:
                time.sleep(before)
                ledger.phase = "during"
                stopping = time.monotonic()
                with postgres_stopped(down):
                    print(f"PostgreSQL stopped ({time.monotonic() - stopping:.1f} s to stop)", flush=True)
                    time.sleep(down)
                    restarting = time.monotonic()
                times["restart"] = time.monotonic() - restarting
                times["down"] = time.monotonic() - stopping
                ledger.phase = "after"
                times["online"] = time.monotonic()
                print(f"PostgreSQL online again after {times['down']:.1f} s", flush=True)
                time.sleep(after)
            finally:
                load.stop()
                poller.stop()
            times["drain"] = server.drain_or_nan(lambda: count_predictions(url), 120.0)
            stored = read_stored(url)
        finally:
            server.stop()
    return ledger, poller, stored, times


def first_after(ledger: Ledger, kinds: tuple[str, ...], since: float) -> str:
    ok = [c.ended - since for c in ledger.phase_calls("after", kinds) if c.status == 200 and c.ended >= since]
    return f"{min(ok):.2f} s" if ok else "never"


def report(ledger: Ledger, poller: ReadinessPoller, stored: Stored, times: dict[str, float], *, down: float,
           tree: Path) -> bool:
    rows: list[list[object]] = []
    for phase in PHASES:
        p_status, p50, p99 = summarize(ledger.phase_calls(phase, PREDICT_KINDS))
        feedback = ledger.phase_calls(phase, ("feedback",))
        f_status, f50, f99 = summarize(feedback)
        n503 = [c for c in feedback if c.status == 503]
        with_ra = f"{sum(c.retry_after for c in n503)}/{len(n503)}" if n503 else "no 503"
        rows.append([phase, _counts(p_status), p50, p99, _counts(f_status), f50, f99, with_ra])
    print(f"\noutage on postgresql — {commit_label(tree)}, PostgreSQL down {times['down']:.1f} s "
          f"(--down {down:g}; restart took {times['restart']:.1f} s), load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs; "
          "status 0 = connection refused, -1 = sent but no answer")
    print(markdown_table(["phase", "predict statuses", "p50 ms", "p99 ms", "feedback statuses", "p50 ms",
                          "p99 ms", "503 with Retry-After"], rows))
    ready_rows: list[list[object]] = []
    for phase in PHASES:
        samples = [s for s in poller.samples if s[0] == phase]
        statuses = Counter(s[1] for s in samples)
        readies = Counter(str(s[2].get("ready")) for s in samples)
        peak = max(samples, key=lambda s: log_backlog(s[2]))[2] if samples else {}
        last = samples[-1][2] if samples else {}
        ready_rows.append([phase, _counts(statuses), _counts(readies), f"`{_compact(peak)}`", f"`{_compact(last)}`"])
    print()
    print(markdown_table(["phase", "readiness statuses", "`ready` values", "body at the largest log backlog",
                          "last body (bodies without models)"], ready_rows))
    missing = [p for p in ledger.returned if p not in stored.prediction_ids]
    by_phase = Counter(ledger.returned[p][1] for p in missing)
    lost_labels = [p for p in ledger.acked if stored.labels.get(p) != ledger.acked[p]]
    print(f"recovery after restart: first successful feedback {first_after(ledger, ('feedback',), times['online'])}, "
          f"first successful predict {first_after(ledger, PREDICT_KINDS, times['online'])}")
    returned = Counter(v[1] for v in ledger.returned.values())
    print(f"prediction ids returned {len(ledger.returned):,} (" + ", ".join(f"{p} {returned[p]:,}" for p in PHASES)
          + f"), stored {len(ledger.returned) - len(missing):,}, lost {len(missing):,} ("
          + ", ".join(f"{p} {by_phase[p]:,}" for p in PHASES) + ")")
    print(f"labels acknowledged {len(ledger.acked):,}, lost or changed {len(lost_labels)}; feedback items "
          f"{dict(ledger.statuses)}; drain after load {times['drain']:.2f} s")
    return not missing and not lost_labels


def _compact(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def _counts(counter: Counter[Any]) -> str:
    return " ".join(f"{k}×{v:,}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))) or "—"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench outage", description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, default=30.0, help=f"seconds PostgreSQL is stopped (≤ {MAX_DOWN:g})")
    parser.add_argument("--before", type=float, default=10.0, help="seconds of load before the outage")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of load after the restart")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--repository", type=Path, help="an existing model repository with digits/1 (skips training)")
    parser.add_argument("--bare", action="store_true",
                        help="run the bare app (uvicorn service.app:create_app) instead of `calibserve serve` with "
                             "its control process")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout whose server and migrations are measured (default: this one)")
    args = parser.parse_args(argv)
    if not 0 < args.down <= MAX_DOWN:
        parser.error(f"--down must be in (0, {MAX_DOWN:g}] s: the machine shares this PostgreSQL")
    status = cluster_status()
    if status != "online":
        print(f"refusing to run: PostgreSQL 15/main is {status!r}, not online (see pg_lsclusters)")
        return 2
    print(f"WARNING: stopping the shared PostgreSQL 15/main for {args.down:g} s; it is restarted on every exit",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="calibserve-outage-") as tmp:
        repository = repository_or_train(args.repository, Path(tmp))
        result = run(repository, down=args.down, before=args.before, after=args.after, clients=args.clients,
                     work=Path(tmp) / "run", tree=args.tree.resolve(), shipped=not args.bare)
    return 0 if report(*result, down=args.down, tree=args.tree.resolve()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
