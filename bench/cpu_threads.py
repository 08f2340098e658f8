"""Server CPU per request, split by process and thread, under wrk load: where the serving CPU goes.

``python -m bench cpu_threads [--seconds 5] [--concurrency 8] [--batch 1] [--api v1|v2] [--repeat 2]
[--database-url URL] [--set CALIBSERVE_X=value …] [--compare-tree DIR]``

Starts ``python -m service serve`` on the bench model (``bench/serve/model.py``, as ``bench serving`` does) and,
in the same run, the plain ASGI ceiling (``bench/baseline_asgi.py``) and optionally another checkout's
calibserve (``--compare-tree``, e.g. ``git archive`` of an earlier commit); loads each with one wrk thread; reads
every thread's ``utime``/``stime`` from ``/proc/<pid>/task/<tid>/stat`` before and after, and names the
threads with ``py-spy dump`` (CPython 3.11 gives its threads no OS names). The table is the median over
``--repeat`` interleaved runs, in µs of CPU per request: the event loop, the prediction-log shipper thread,
the ship process (``service/db/ship_process.py``), the rest.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench.serve import proc, servers, wrk
from bench.serve.bodies import write_bodies
from bench.serve.model import build
from bench.serving import V1, V2, calibserve_server, uvicorn_server

CLOCK = proc.CLOCK_TICKS


def thread_ticks(root: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(pid, tid) → (utime, stime) ticks for every thread of ``root``'s process tree."""
    stats = proc.all_stats()
    out = {}
    for pid in proc.tree(root, stats):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                text = (task / "stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            out[(pid, int(task.name))] = (int(fields[11]), int(fields[12]))
    return out


def thread_names(root: int) -> dict[int, str]:
    """tid → Python thread name (``py-spy dump``); processes of the tree that are not Python are skipped."""
    names: dict[int, str] = {}
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    for pid in proc.tree(root, proc.all_stats()):
        out = subprocess.run([spy, "dump", "-p", str(pid)], capture_output=True, text=True).stdout
        for tid, name in re.findall(r'Thread (\d+) \(\w+\): "([^"]*)"', out):
            names[int(tid)] = name if pid == root else f"ship process: {name}" if name == "MainThread" else name
    return names


def label(pid: int, tid: int, root: int, names: dict[int, str]) -> str:
    if tid in names:
        return names[tid]
    comm = Path(f"/proc/{pid}/task/{tid}/comm")
    return (comm.read_text().strip() if comm.exists() else "exited") + ("" if pid == root else " (child)")


def measure(server: servers.Server, url: str, body: tuple[Path, str, str], args: argparse.Namespace,
            lua: Path) -> tuple[dict[str, tuple[float, float]], float, float]:
    """({thread: (user µs/req, sys µs/req)}, req/s, p99 ms) for one wrk run."""
    wrk.run(url, body, args.concurrency, 1, lua)  # warm: models, child processes, caches
    before = thread_ticks(server.pid)
    report = wrk.run(url, body, args.concurrency, args.seconds, lua)
    servers.drain(server)  # the shipping of these requests counts too
    after = thread_ticks(server.pid)
    names = thread_names(server.pid)
    per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for key, (u, s) in after.items():
        u0, s0 = before.get(key, (0, 0))
        name = label(*key, root=server.pid, names=names)
        per[name][0] += (u - u0) / CLOCK / report.requests * 1e6
        per[name][1] += (s - s0) / CLOCK / report.requests * 1e6
    return {k: (v[0], v[1]) for k, v in per.items() if v[0] + v[1] > 0}, report.rps, report.p99_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1, choices=(1, 64))
    parser.add_argument("--api", choices=("v1", "v2"), default="v1")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--database-url", help="calibserve's database (default: a fresh SQLite file)")
    parser.add_argument("--set", action="append", default=[], metavar="CALIBSERVE_X=value",
                        help="extra environment for calibserve (e.g. CALIBSERVE_SHIP_PROCESS=false)")
    parser.add_argument("--compare-tree", type=Path, help="another checkout, served the same way, in the same run")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="calibserve-cpu-"))
    model = build(work)
    bodies = write_bodies(work, model.rows, (args.batch,))
    lua = work / "post.lua"
    lua.write_text(wrk.LUA)
    extra = dict(item.split("=", 1) for item in args.set)
    targets = {
        "calibserve": (calibserve_server("calibserve", args.database_url or f"sqlite:///{work / 'c.db'}",
                                         model.repository, extra_env=extra), V1 if args.api == "v1" else V2,
                       bodies[args.api][args.batch]),
        **({"compare tree": (calibserve_server("compare", f"sqlite:///{work / 'before.db'}", model.repository,
                                               tree=args.compare_tree.resolve()), V1 if args.api == "v1" else V2,
                             bodies[args.api][args.batch])} if args.compare_tree else {}),
        "plain ASGI": (uvicorn_server("asgi", "bench.baseline_asgi:app", {"BASELINE_MODEL": str(model.onnx)}), V2,
                       bodies["v2"][args.batch]),
    }
    results: dict[str, list[tuple[dict[str, tuple[float, float]], float, float]]] = defaultdict(list)
    try:
        for name, (server, _, _) in targets.items():
            servers.start(server, work / f"{name.replace(' ', '_')}.log")
        for _ in range(args.repeat):
            for name, (server, path, body) in targets.items():
                results[name].append(measure(server, server.base + path, body, args, lua))
    finally:
        for server, _, _ in targets.values():
            servers.stop(server)
    print(f"\nserver CPU per request by thread: {args.api} batch {args.batch}, c={args.concurrency}, "
          f"{args.seconds} s × {args.repeat} (median); extra env {extra or '—'}\n")
    print("| server | thread | user µs/req | sys µs/req | total µs/req |\n|---|---|--:|--:|--:|")
    for name, runs in results.items():
        threads = sorted({t for r in runs for t in r[0]}, key=lambda t: -statistics.median(
            sum(r[0].get(t, (0.0, 0.0))) for r in runs))
        total = statistics.median(sum(u + s for u, s in r[0].values()) for r in runs)
        for t in threads:
            u = statistics.median(r[0].get(t, (0.0, 0.0))[0] for r in runs)
            s = statistics.median(r[0].get(t, (0.0, 0.0))[1] for r in runs)
            if u + s >= 0.5:
                print(f"| {name} | {t} | {u:.1f} | {s:.1f} | {u + s:.1f} |")
        rps = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        print(f"| **{name}** | **all** ({rps:,.0f} req/s, p99 {p99:.2f} ms) | | | **{total:.1f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
