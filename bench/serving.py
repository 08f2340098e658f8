"""Serving benchmark: calibserve against a plain ASGI ceiling, a hand-written FastAPI endpoint and MLServer.

``python -m bench serving [--duration 3] [--repeat 3] [--quick] [--targets a,b,f-json] [--no-peers]
[--setup-peers] [--compare-tree DIR] [--profile [KEY]]``

Every target serves the same scikit-learn ``LogisticRegression`` (``load_digits``): MLServer 1.7.1 the
joblib file, the others its skl2onnx conversion (``bench/serve/model.py``); every V2 body asks for the
probabilities and the class. Targets: (a) plain ASGI + onnxruntime (``bench/baseline_asgi.py``),
(b) FastAPI ``async def`` + raw body + orjson (``bench/baseline_app.py``), (c) MLServer defaults,
(d) MLServer tuned, (e) calibserve ``/v1`` and (f) ``/v2`` JSON and binary, as shipped
(``python -m service serve``: calibration, prediction log, metrics on) on SQLite and on a fresh PostgreSQL
database, and ``/v2`` JSON with 2 workers. Load comes from ``wrk`` (1 thread); batch 1 and 64 at
concurrency 1, 8 and 32; the rounds interleave the targets (the order rotates each round) and each column is
the median over ``--repeat`` rounds. Server CPU per request is utime+stime of the server's whole process
tree over the run (after its prediction log has caught up) divided by the requests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.serve import peers, proc, servers
from bench.serve import table as tables
from bench.serve import wrk as wrk_run
from bench.serve.bodies import write_bodies
from bench.serve.model import build
from bench.serve.servers import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 64)
CONCURRENCY = (1, 8, 32)
QUICK_CELLS = ((1, 8), (64, 8))
V1, V2 = "/v1/models/digits/predict", "/v2/models/digits/infer"


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    server: str
    path: str
    body: str  # kind in write_bodies


TARGETS = [
    Target("a", "(a) plain ASGI + onnxruntime", "asgi", V2, "v2"),
    Target("b", "(b) FastAPI async + orjson", "fastapi", V2, "v2"),
    Target("c", "(c) MLServer 1.7.1 default", "mlserver-default", V2, "v2-mlserver"),
    Target("d", "(d) MLServer 1.7.1 tuned", "mlserver-tuned", V2, "v2-mlserver"),
    Target("e", "(e) calibserve /v1, SQLite", "calibserve-sqlite", V1, "v1"),
    Target("f-json", "(f) calibserve /v2 JSON, SQLite", "calibserve-sqlite", V2, "v2"),
    Target("f-binary", "(f) calibserve /v2 binary, SQLite", "calibserve-sqlite", V2, "v2-binary"),
    Target("e-pg", "(e) calibserve /v1, PostgreSQL", "calibserve-postgresql", V1, "v1"),
    Target("f-json-pg", "(f) calibserve /v2 JSON, PostgreSQL", "calibserve-postgresql", V2, "v2"),
    Target("f-binary-pg", "(f) calibserve /v2 binary, PostgreSQL", "calibserve-postgresql", V2, "v2-binary"),
    Target("f-json-2w", "(f) calibserve /v2 JSON, SQLite, 2 workers", "calibserve-2-workers", V2, "v2"),
    Target("e-nometrics", "(e) calibserve /v1, SQLite, request metrics off", "calibserve-no-metrics", V1, "v1"),
    Target("e-single", "(e) calibserve /v1, SQLite, --no-control-process", "calibserve-single", V1, "v1"),
    Target("g-v1", "(g) --compare-tree /v1, SQLite", "compare-tree", V1, "v1"),
    Target("g-json", "(g) --compare-tree /v2 JSON, SQLite", "compare-tree", V2, "v2"),
]
LABELS = {t.key: t.label for t in TARGETS}
PEER_KEYS = {"c", "d"}


def pick_targets(args: argparse.Namespace) -> list[Target]:
    keys = [k.strip() for k in args.targets.split(",")] if args.targets else [
        t.key for t in TARGETS if not t.key.startswith("g-")]
    unknown = sorted(set(keys) - set(LABELS))
    if unknown:
        raise SystemExit(f"unknown targets {unknown}; choose from {list(LABELS)}")
    if args.compare_tree is not None:
        keys += [k for k in ("g-v1", "g-json") if k not in keys]
    if args.no_peers:
        keys = [k for k in keys if k not in PEER_KEYS]
    return [t for t in TARGETS if t.key in keys]


def uvicorn_server(name: str, app: str, env: dict[str, str]) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--http", "httptools",
            "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
    return Server(name, argv, "/health", port, env={"PYTHONPATH": str(ROOT), **env})


def calibserve_server(name: str, database_url: str, repository: Path, workers: int = 1,
                      tree: Path = ROOT, extra_env: dict[str, str] | None = None) -> Server:
    """``python -m service serve`` as a user starts it (it migrates the database first), from ``tree``."""
    port = free_port()
    env = {"PYTHONPATH": str(tree), "CALIBSERVE_DATABASE_URL": database_url, "CALIBSERVE_HOST": "127.0.0.1",
           "CALIBSERVE_PORT": str(port), "CALIBSERVE_MODEL_REPOSITORY": str(repository), **(extra_env or {})}
    return Server(name, [sys.executable, "-m", "service", "serve", "--workers", str(workers)], "/v2/health/ready",
                  port, env=env, cwd=tree, calibserve=True)


def make_servers(names: set[str], work: Path, model_onnx: Path, repository: Path, joblib_dir: Path,
                 postgres_url: str | None, compare_tree: Path | None) -> dict[str, Server]:
    made: dict[str, Server] = {}
    sqlite = f"sqlite:///{work / 'calibserve.db'}"
    factories = {
        "asgi": lambda: uvicorn_server("asgi", "bench.baseline_asgi:app", {"BASELINE_MODEL": str(model_onnx)}),
        "fastapi": lambda: uvicorn_server("fastapi", "bench.baseline_app:app", {"BASELINE_MODEL": str(model_onnx)}),
        "mlserver-default": lambda: peers.mlserver_server("default", joblib_dir, work),
        "mlserver-tuned": lambda: peers.mlserver_server("tuned", joblib_dir, work),
        "calibserve-sqlite": lambda: calibserve_server("calibserve-sqlite", sqlite, repository),
        "calibserve-postgresql": lambda: calibserve_server("calibserve-postgresql", str(postgres_url), repository),
        "calibserve-2-workers": lambda: calibserve_server("calibserve-2-workers", f"sqlite:///{work / '2w.db'}",
                                                          repository, workers=2),
        "calibserve-no-metrics": lambda: calibserve_server(
            "calibserve-no-metrics", f"sqlite:///{work / 'nm.db'}", repository,
            extra_env={"CALIBSERVE_REQUEST_METRICS": "false"}),
        "calibserve-single": lambda: calibserve_server(
            "calibserve-single", f"sqlite:///{work / 'single.db'}", repository,
            extra_env={"CALIBSERVE_CONTROL_PROCESS": "false"}),
        "compare-tree": lambda: calibserve_server("compare-tree", f"sqlite:///{work / 'before.db'}", repository,
                                                  tree=Path(str(compare_tree)).resolve()),
    }
    for name in factories:  # a stable start order
        if name in names:
            made[name] = factories[name]()
    return made


def measure(targets: list[Target], running: dict[str, Server], bodies: dict[str, dict[int, tuple[Path, str, str]]],
            cells: list[tuple[int, int]], repeat: int, duration: int, lua: Path,
            peaks: dict[str, float]) -> list[tables.Run]:
    runs: list[tables.Run] = []
    for batch, conc in cells:
        for round_ in range(repeat):
            shift = round_ % len(targets)  # rotate, so no target always runs right after the same neighbour
            for t in targets[shift:] + targets[:shift]:
                server = running[t.server]
                servers.drain(server)
                cpu0 = proc.tree_cpu_seconds(server.pid)
                report = wrk_run.run(server.base + t.path, bodies[t.body][batch], conc, duration, lua)
                servers.drain(server)  # the log work those requests caused counts in their CPU
                cpu_us = (proc.tree_cpu_seconds(server.pid) - cpu0) / max(report.requests, 1) * 1e6
                peaks[t.server] = max(peaks.get(t.server, 0.0), proc.tree_rss_mib(server.pid))
                runs.append(tables.Run(t.key, batch, conc, report.rps, report.p50_ms, report.p99_ms, cpu_us,
                                       report.errors))
                print(f"  {t.label:44} batch {batch:2} c={conc:2}: {report.rps:8.0f} req/s  p99 "
                      f"{report.p99_ms:6.2f} ms  {cpu_us:6.0f} µs CPU/req  errors {report.errors}", flush=True)
    return runs


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds per cell; medians shown")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1 and 64 at c=8, 1 s, 1 round")
    parser.add_argument("--targets", help=f"comma-separated subset of {','.join(LABELS)}")
    parser.add_argument("--cells", help="comma-separated BATCHxCONCURRENCY cells instead of the full grid "
                                        "(e.g. 1x8,64x8; batches 1 and 64)")
    parser.add_argument("--no-peers", action="store_true", help="skip MLServer (c, d)")
    parser.add_argument("--setup-peers", action="store_true",
                        help=f"create {peers.VENV.relative_to(ROOT)} (MLServer 1.7.1) and exit")
    parser.add_argument("--compare-tree", type=Path,
                        help="another checkout (e.g. a git worktree of an earlier commit): its /v1 and /v2 JSON "
                             "join the same run as (g), on their own SQLite database")
    parser.add_argument("--profile", nargs="?", const="e", metavar="KEY",
                        help="instead of the table: py-spy a calibserve target (default e, /v1) under wrk at c=8, "
                             "batch 1, for --duration seconds (at least 5), and print the top frames")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup_peers:
        peers.setup()
        print(f"MLServer peers installed in {peers.VENV}")
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.quick:
        args.duration, args.repeat = 1, 1
    targets = pick_targets(args)
    if not targets:
        print("no targets left to measure (--targets and --no-peers exclude them all)", file=sys.stderr)
        return 2
    if args.profile:
        from bench.serve.profile_run import profile

        return profile(args.profile, args.duration, ROOT)
    if any(t.key in PEER_KEYS for t in targets) and not peers.installed():
        print("MLServer is not set up: run `python -m bench serving --setup-peers` first, or pass --no-peers",
              file=sys.stderr)
        return 2
    cells = list(QUICK_CELLS) if args.quick else [(b, c) for b in BATCHES for c in CONCURRENCY]
    if args.cells:
        cells = [(int(b), int(c)) for b, c in (cell.split("x") for cell in args.cells.split(","))]
    from bench.serve.postgres import ADMIN_URL, fresh_database, postgres_reachable

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="calibserve-bench-") as tmp:
        work = Path(tmp)
        model = build(work)
        print(f"model: LogisticRegression on load_digits, temperature calibrator T = {model.temperature:.3f}")
        bodies = write_bodies(work, model.rows, BATCHES)
        lua = work / "post.lua"
        lua.write_text(wrk_run.LUA)
        names = {t.server for t in targets}
        need_pg = "calibserve-postgresql" in names
        if need_pg and not postgres_reachable():
            print(f"PostgreSQL is not reachable at {ADMIN_URL} (CALIBSERVE_BENCH_POSTGRES_URL): start it, or "
                  "leave the -pg targets out with --targets", file=sys.stderr)
            return 2
        with fresh_database() if need_pg else contextlib.nullcontext(None) as pg_url:
            made = make_servers(names, work, model.onnx, model.repository, model.joblib_dir, pg_url,
                                args.compare_tree)
            memory: dict[str, tables.Memory] = {}
            peaks: dict[str, float] = {}
            try:
                for server in made.values():  # one at a time: time to ready is not shared with a neighbour
                    servers.start(server, work / f"{server.name}.log")
                    rss = proc.tree_rss_mib(server.pid)
                    memory[server.name] = tables.Memory(rss, rss, server.ready_seconds,
                                                        len(proc.tree(server.pid, proc.all_stats())))
                    print(f"  {server.name:24} ready in {server.ready_seconds:5.2f} s, RSS {rss:5.0f} MiB",
                          flush=True)
                for t in targets:  # warm-up: lazy imports, allocator growth, first connections
                    wrk_run.run(made[t.server].base + t.path, bodies[t.body][1], 2, 1, lua)
                print(f"{load_line()} before the run", flush=True)
                runs = measure(targets, made, bodies, cells, args.repeat, args.duration, lua, peaks)
            finally:
                for server in made.values():
                    servers.stop(server)
        for name, m in memory.items():
            memory[name] = tables.Memory(m.rss_ready_mib, max(m.rss_ready_mib, peaks.get(name, 0.0)),
                                         m.ready_seconds, m.processes)
    rows = tables.medians(runs)
    print()
    print(tables.results_table(rows, LABELS))
    print()
    print(tables.memory_table(memory))
    print(f"\n{load_line()} after the run; {len(targets)} targets, {len(cells)} cells, median of {args.repeat} "
          f"interleaved wrk runs of {args.duration} s per cell; bench took {time.monotonic() - started:.0f} s")
    print("\nIssue 11 targets (c=8, batch 1 unless stated):")
    print("\n".join(tables.checks(rows, LABELS)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
