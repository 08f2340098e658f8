"""CPU per predict request in-process (no sockets) and the shipper's CPU per row, this tree vs another.

``python -m bench hot_path [--compare-tree DIR] [--requests 4000] [--rounds 3]``

What ``bench serving`` cannot separate on a shared machine: the app's own CPU per request. Each case runs in a
fresh interpreter with the tree's ``PYTHONPATH``: the direct path's answer (``fast_path.answer_now``, what
``api/protocol.py`` calls from the parser's callbacks; in a tree without it, the ASGI fast path
``CalibServe.dispatch``) answers ``--requests`` requests of the bench model (``bench/serve/model.py``:
LogisticRegression on digits, a temperature calibrator) from bodies in memory, with the shipper thread stopped; the
CPU is ``process_time`` over them. "ship" then times the shipper draining those blocks into SQLite (``thread_time``
per row: decode, rows, insert, counts). Rounds interleave the trees; the table shows each case's minimum (the
least disturbed by the other tenants of the machine) and the ratio to ``--compare-tree``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CASES = (("v1", 1), ("v2", 1), ("v1", 64), ("v2", 64))


def one(kind: str, batch: int, requests: int) -> dict[str, float]:
    """Run in the child: µs CPU per request (no shipper), then µs CPU per shipped row."""
    from bench.serve.model import build
    from service.app import build_services, create_app
    from service.db.migrate import upgrade
    from service.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="calibserve-hot-"))
    model = build(work)
    rows = model.rows[:batch].tolist()
    if kind == "v1":
        body, path = json.dumps({"instances": rows}).encode(), "/v1/models/digits/predict"
    else:
        body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [batch, 64],
                                       "data": rows}]}).encode()
        path = "/v2/models/digits/infer"
    settings = Settings(database_url=f"sqlite:///{work / 'hot.db'}", model_repository=model.repository,
                        spool_dir=work / "spool")
    upgrade(settings.database_url)
    app = create_app(settings)
    services = build_services(settings)
    services.registry.load_all()
    writer: Any = services.writer
    writer._thread.start = lambda: None  # the shipper runs below, timed on its own
    writer.start()
    app.state.services = services
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    import service.api.fast_path as fast_path

    # this tree: the direct path as served (api/protocol.py answers from the parser's callbacks); an older
    # tree has only the ASGI fast path
    answer_now: Any = getattr(fast_path, "answer_now", None)
    matched = fast_path.match(path)
    headers = {"content-type": "application/json", "content-length": str(len(body))}

    async def serve(n: int) -> None:
        if answer_now is not None:
            for _ in range(n):
                sent.append({"status": answer_now(services, matched, headers, body, path)[0]})
            return
        older: Any = app  # an older tree's app has the ASGI fast path as CalibServe.dispatch
        for _ in range(n):
            await older.dispatch(scope, receive, send)

    asyncio.run(serve(200))  # warm-up
    assert sent[0]["status"] == 200, sent[:2]
    cpu = time.process_time()
    asyncio.run(serve(requests))
    request_us = (time.process_time() - cpu) / requests * 1e6
    shipped_rows = writer.depth()
    cpu = time.thread_time()
    if hasattr(writer, "_drain"):  # this tree: one round ships everything spooled, in batches
        writer._drain()
    else:  # an older tree
        while writer._ship_once():
            pass
    ship_us = (time.thread_time() - cpu) / max(shipped_rows, 1) * 1e6
    return {"request_us": request_us, "ship_us_per_row": ship_us}


def run_case(tree: Path, kind: str, batch: int, requests: int) -> dict[str, float]:
    # the tree's service (and bench.serve); this file by path. The shipper's inserts run in this thread (not
    # a ship process) so that ``thread_time`` sees them
    env = {**os.environ, "PYTHONPATH": str(tree), "CALIBSERVE_SHIP_PROCESS": "false"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind, str(batch), str(requests)],
                         env=env, cwd=tree, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--child"]:  # one case, in a fresh interpreter (run_case)
        print(json.dumps(one(argv[1], int(argv[2]), int(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--compare-tree", type=Path, help="another checkout (e.g. `git archive` of an earlier commit)")
    parser.add_argument("--requests", type=int, default=4000, help="requests per case at batch 1 (÷4 at 64)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    trees = {"this tree": ROOT}
    if args.compare_tree is not None:
        trees["compare"] = args.compare_tree.resolve()
    best: dict[tuple[str, str, int], dict[str, float]] = {}
    for round_ in range(args.rounds):
        for kind, batch in CASES:
            for name, tree in (list(trees.items()) if round_ % 2 == 0 else list(trees.items())[::-1]):
                got = run_case(tree, kind, batch, args.requests if batch == 1 else max(args.requests // 4, 100))
                key = (name, kind, batch)
                best[key] = {k: min(v, best.get(key, {}).get(k, float("inf"))) for k, v in got.items()}
                print(f"  round {round_ + 1} {name:9} {kind} batch {batch:2}: {got['request_us']:7.1f} µs/request, "
                      f"ship {got['ship_us_per_row']:5.1f} µs/row", flush=True)
    print("\n| case | this tree µs CPU/request | compare | ratio | ship µs/row (this) | compare | ratio |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for kind, batch in CASES:
        mine, other = best[("this tree", kind, batch)], best.get(("compare", kind, batch))
        cells = [f"{mine['request_us']:.0f}"]
        cells += ([f"{other['request_us']:.0f}", f"{mine['request_us'] / other['request_us']:.2f}×"] if other
                  else ["–", "–"])
        cells += [f"{mine['ship_us_per_row']:.1f}"]
        cells += ([f"{other['ship_us_per_row']:.1f}", f"{mine['ship_us_per_row'] / other['ship_us_per_row']:.2f}×"]
                  if other else ["–", "–"])
        print(f"| /{kind} batch {batch} | " + " | ".join(cells) + " |")
    load = os.getloadavg()
    print(f"\nminimum of {args.rounds} interleaved rounds; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
          f"on {os.cpu_count()} CPUs after the run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
