"""Crash: SIGKILL the server 3× under mixed load; every id returned and every label acknowledged is stored.

    python -m bench crash [--db sqlite|postgresql|both] [--kills 3] [--seconds 30] [--clients 4] [--repository DIR]
                       [--tree CHECKOUT] [--bare]

Per database: a fresh database, the real server (`calibserve serve`, with its control process; `--bare`: the app
alone under uvicorn) with a fixed working directory and
``CALIBSERVE_SPOOL_DIR``, ``--clients`` threads of mixed load (``bench/faults_load.py``), and ``--kills``
SIGKILLs, each followed by a restart on the same database and directories; each of the ``--kills + 1``
processes serves ``--seconds / (kills + 1)`` s of load (restart time comes on top). Then it waits until
readiness reports an empty prediction-log backlog and compares what the clients were told with the tables:
ids returned vs ``predictions`` rows (missing ones counted per server process), labels acknowledged
``accepted``/``duplicate`` vs ``feedback`` rows (lost, changed), and the statistics tables vs the rows they
summarise. It also counts the run directories (``service/run_directory.py``) in the server's own TMPDIR: the
live server's one after each restart, none after the stop. Exit status 1 when anything was lost or disagrees.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.datasets import load_digits

from bench.faults_common import (
    ROOT,
    Server,
    Stored,
    commit_label,
    count_predictions,
    fresh_database,
    markdown_table,
    read_stored,
    repository_or_train,
)
from bench.faults_load import PREDICT_KINDS, Ledger, LoadClients


@dataclass
class CrashRun:
    kind: str
    ledger: Ledger
    stored: Stored
    first_ready: float
    kill_to_ready: list[float]
    drain: float
    readiness: dict[str, Any]
    run_directories: list[int]  # in the server's TMPDIR after each restart, then after its stop
    shipped: bool


def run(kind: str, *, repository: Path, kills: int, seconds: float, clients: int, work: Path,
        tree: Path, shipped: bool = True) -> CrashRun:
    x, y = load_digits(return_X_y=True)
    with fresh_database(kind, work, tree) as url:
        server = Server(database_url=url, repository=repository, work=work, root=tree, shipped=shipped)
        ledger = Ledger()
        try:
            first = server.start()
            load = LoadClients(server.base_url, ledger, x, y, clients=clients)
            load.start()
            kill_to_ready, run_directories = [], []
            try:
                # every process serves the same share of the load before its SIGKILL (restarts are not counted,
                # so a slow start on a busy machine does not leave a process killed before it served anything)
                for _ in range(kills):
                    time.sleep(seconds / (kills + 1))
                    killed = time.monotonic()
                    server.kill()
                    server.start()
                    ledger.generation = server.generation
                    kill_to_ready.append(time.monotonic() - killed)
                    run_directories.append(server.run_directories())
                time.sleep(seconds / (kills + 1))
            finally:
                load.stop()
            drain = server.drain_or_nan(lambda: count_predictions(url), 120.0)
            _, body = server.readiness()
            stored = read_stored(url)
        finally:
            server.stop()
        run_directories.append(server.run_directories())
    return CrashRun(kind, ledger, stored, first, kill_to_ready, drain, body, run_directories, shipped)


def report(r: CrashRun, *, kills: int, seconds: float, clients: int, tree: Path) -> bool:
    """Print the run's table; True when nothing was lost and every sum agrees."""
    led, st = r.ledger, r.stored
    missing = [p for p in led.returned if p not in st.prediction_ids]
    per_process = Counter(led.returned[p][0] for p in missing)
    lost_labels = [p for p in led.acked if p not in st.labels]
    changed = [p for p in led.acked if p in st.labels and st.labels[p] != led.acked[p]]
    n_pred, n_fb = len(st.prediction_ids), len(st.labels)
    ok_pred, ok_fb = not missing, not lost_labels and not changed
    ok_cal, ok_cnt = abs(st.calibration_totals - n_fb) < 1e-6, abs(st.prediction_counts - n_pred) < 1e-6
    by_process = ", ".join(str(per_process.get(g, 0)) for g in range(1, kills + 2))
    # the live server's own, and none once it stopped: a killed server's is removed by the next start
    expected_dirs = [int(r.shipped)] * kills + [0]
    ok_dirs = r.run_directories == expected_dirs
    rows: list[list[object]] = [
        ["prediction ids returned → `predictions` rows", len(led.returned), len(led.returned) - len(missing),
         f"{len(missing)} (per process: {by_process})", "PASS" if ok_pred else "FAIL"],
        ["labels acknowledged (accepted/duplicate) → `feedback` rows", len(led.acked),
         len(led.acked) - len(lost_labels), f"{len(lost_labels)} lost, {len(changed)} changed",
         "PASS" if ok_fb else "FAIL"],
        ["Σ calibration_totals.count = feedback rows", n_fb, round(st.calibration_totals),
         f"{st.calibration_totals - n_fb:+,.0f}", "PASS" if ok_cal else "FAIL"],
        ["Σ prediction_counts.count = prediction rows", n_pred, round(st.prediction_counts),
         f"{st.prediction_counts - n_pred:+,.0f}", "PASS" if ok_cnt else "FAIL"],
        ["run directories in TMPDIR after each restart, then after the stop", expected_dirs, r.run_directories,
         "none left" if ok_dirs else "left behind", "PASS" if ok_dirs else "FAIL"],
    ]
    print(f"\ncrash on {r.kind} — {commit_label(tree)}, {kills} SIGKILLs, {seconds:g} s of load while up, "
          f"{clients} client threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(markdown_table(["check", "clients were told", "stored", "difference", "verdict"], rows))
    predict = Counter(c.status for c in led.calls if c.kind in PREDICT_KINDS)
    feedback = Counter(c.status for c in led.calls if c.kind == "feedback")
    print("requests by status (0 = connection refused: server down; -1 = sent, no answer: killed in flight): "
          f"predict {dict(sorted(predict.items()))}; "
          f"feedback {dict(sorted(feedback.items()))}; feedback items: {dict(led.statuses)} "
          f"({len(led.pending)} ids not yet labelled when the load stopped)")
    unacked = len(st.prediction_ids - led.returned.keys()), len(st.labels.keys() - led.acked.keys())
    print(f"stored but never acknowledged (committed, answer lost in a kill, not yet retried): "
          f"{unacked[0]} predictions, {unacked[1]} labels")
    print(f"start → ready {r.first_ready:.2f} s; SIGKILL → ready {', '.join(f'{t:.2f}' for t in r.kill_to_ready)} s; "
          f"drain after load {r.drain:.2f} s")
    print(f"readiness after drain: {json.dumps(r.readiness.get('prediction_log'))}")
    return ok_pred and ok_fb and ok_cal and ok_cnt and ok_dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench crash", description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="seconds of load per database while a server is up, shared by the processes")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--repository", type=Path, help="an existing model repository with digits/1 (skips training)")
    parser.add_argument("--bare", action="store_true",
                        help="run the bare app (uvicorn service.app:create_app) instead of `calibserve serve` with "
                             "its control process")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout whose server and migrations are measured (default: this one)")
    args = parser.parse_args(argv)
    tree = args.tree.resolve()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    ok = True
    with tempfile.TemporaryDirectory(prefix="calibserve-crash-") as tmp:
        repository = repository_or_train(args.repository, Path(tmp))
        for kind in kinds:
            work = Path(tmp) / kind
            work.mkdir()
            result = run(kind, repository=repository, kills=args.kills, seconds=args.seconds,
                         clients=args.clients, work=work, tree=tree, shipped=not args.bare)
            ok = report(result, kills=args.kills, seconds=args.seconds, clients=args.clients, tree=tree) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
