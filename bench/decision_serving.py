"""Cost of `coverage` and `decision` on /v1 predict over HTTP, batch 1 and 64, as ratios to plain predict.

One server (uvicorn, one worker, SQLite prediction log, metrics on: as shipped) serves the digits demo model
with its conformal.json and an admin-set cost matrix (10 "say d" actions at 0/1 cost + "review" at 0.2).
``wrk`` posts the same rows with: nothing extra (plain), ``coverage: 0.9``, ``min_confidence: 0.7``,
``decision: true``, and all three. Rounds interleave the variants (a shared machine is noisy) and each
cell is the median of ``--repeat`` runs; the writer's backlog is drained before each run. The extra rows
the prediction log writes for served sets/decisions are included (they are expanded in its writer thread).

    python -m bench.decision_serving [--duration 3] [--repeat 3] [--concurrency 8] [--repository DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

from bench.serve import servers
from bench.serve import wrk as wrk_run
from bench.serving import calibserve_server

BATCHES = (1, 64)
VARIANTS: dict[str, dict[str, object]] = {
    "plain predict": {},
    "+ coverage 0.9": {"coverage": 0.9},
    "+ min_confidence 0.7": {"min_confidence": 0.7},
    "+ decision (cost matrix)": {"decision": True},
    "+ all three": {"coverage": 0.9, "min_confidence": 0.7, "decision": True},
}
TOKEN = "bench-admin-token"


def train(repository: Path) -> None:
    from service.training.pipeline import train_and_export

    train_and_export(dataset="digits", loss="flsd53", name="digits", version=1, repository=repository,
                     calibrator="temperature", curvature=False, progress=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repository", type=Path, help="an existing repository with digits/1 (skips training)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    from sklearn.datasets import load_digits

    from service.db.migrate import upgrade

    rows = load_digits().data
    with tempfile.TemporaryDirectory(prefix="calibserve-bench-") as tmp:
        work = Path(tmp)
        repository = args.repository or work / "models"
        if args.repository is None:
            print("training the digits demo model …", flush=True)
            train(repository)
        (work / "post.lua").write_text(wrk_run.LUA)
        bodies: dict[tuple[str, int], tuple[Path, str, str]] = {}
        for b in BATCHES:
            for name, extra in VARIANTS.items():
                path = work / f"{len(bodies)}.json"
                path.write_text(json.dumps({"instances": rows[:b].tolist(), **extra}))
                bodies[(name, b)] = (path, "application/json", "")
        db = f"sqlite:///{work / 'bench.db'}"
        upgrade(db)
        server = calibserve_server("calibserve-sqlite", db, repository)
        server.env["CALIBSERVE_ADMIN_TOKEN"] = TOKEN
        servers.start(server, work / "ours.log")
        base = server.base
        try:
            costs = [[0.0 if a == k else 1.0 for k in range(10)] for a in range(10)] + [[0.2] * 10]
            r = httpx.put(f"{base}/v1/admin/models/digits/cost-matrix", json={"matrix": costs},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            assert r.status_code == 201, r.text
            url = f"{base}/v1/models/digits/predict"
            runs: dict[tuple[str, int], list[tuple[float, float]]] = {key: [] for key in bodies}
            for _ in range(args.repeat):
                for key, body in bodies.items():
                    servers.drain(server)
                    report = wrk_run.run(url, body, args.concurrency, args.duration, work / "post.lua")
                    assert report.errors == 0, f"{key}: {report.errors} failed requests"
                    runs[key].append((report.rps, report.p50_ms))
        finally:
            servers.stop(server)
    print(f"\n/v1 predict, digits MLP, concurrency {args.concurrency}, {args.duration}s × {args.repeat} "
          "interleaved runs per cell (median)\n")
    print(f"{'variant':26s}" + "".join(f"{f'b{b} req/s':>11s}{'p50 ms':>8s}{'ratio':>7s}" for b in BATCHES))
    for name in VARIANTS:
        cells = ""
        for b in BATCHES:
            rps = statistics.median(r for r, _ in runs[(name, b)])
            p50 = statistics.median(p for _, p in runs[(name, b)])
            plain = statistics.median(r for r, _ in runs[("plain predict", b)])
            cells += f"{rps:11.0f}{p50:8.2f}{rps / plain:7.2f}"
        print(f"{name:26s}{cells}")
    print("\nratio = req/s of the variant / req/s of plain predict in the same run (1.00 = free)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
