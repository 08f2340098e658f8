"""Feedback ingest into PostgreSQL: labels/s in batches of 1,000 and single-label requests/s.

Through the real app (``python -m service serve --workers N`` on a fresh PostgreSQL database, load from
``wrk``: a Lua script POSTs pre-generated bodies, every label for a distinct prediction, so every item is
a real ``accepted`` insert plus its calibration statistics). Baselines from the same run: the handler
in-process (no HTTP), a bare ``INSERT … ON CONFLICT DO NOTHING`` of the same rows (no statistics, the
floor any durable label store pays), and ``GET /v2/health/live`` (the HTTP floor).

    python -m bench.feedback_ingest [--duration 5] [--workers 2] [--model-dir models/digits/1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import uuid_utils
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.dialects import postgresql

PG = os.environ.get("CALIBSERVE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
LUA = """
local bodies, n, i = {}, 0, 0
function setup(thread) thread:set("offset", setup_count or 0); setup_count = (setup_count or 0) + 1 end
function init(args)
  for line in io.lines(os.getenv("BENCH_BODIES")) do n = n + 1; bodies[n] = line end
  i = offset
  stride = tonumber(os.getenv("BENCH_THREADS"))
end
function request()
  i = i + stride
  if i > n then wrk.thread:stop() end
  return wrk.format("POST", "/v1/feedback", {["Content-Type"] = "application/json"}, bodies[((i - 1) % n) + 1])
end
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def fresh_database() -> tuple[str, str]:
    name = f"calibserve_bench_{uuid_utils.uuid7().hex[-10:]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(name: str) -> None:
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed_predictions(url: str, n: int, probs: np.ndarray) -> list[str]:
    """n prediction rows over the last hour (60 buckets), probabilities cycled from real model outputs."""
    from service.db.tables import Prediction

    engine = create_engine(url)
    now = datetime.now(UTC)
    ids = [str(uuid_utils.uuid7()) for _ in range(n)]
    blobs = [p.astype("<f4").tobytes() for p in probs]
    with engine.begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(insert(Prediction), [
                {"id": ids[i], "model": "digits", "version": 1, "calibrator_version": 1,
                 "created_at": now - timedelta(seconds=3599 * i / n), "logits": blobs[i % len(blobs)],
                 "probabilities": blobs[i % len(blobs)], "confidence": float(probs[i % len(probs)].max()),
                 "class_index": int(probs[i % len(probs)].argmax()), "tags_id": None}
                for i in range(start, min(n, start + 10_000))])
    engine.dispose()
    return ids


def write_bodies(path: Path, ids: list[str], labels: np.ndarray, batch: int) -> int:
    with path.open("w") as fh:
        for start in range(0, len(ids) - batch + 1, batch):
            items = [{"prediction_id": p, "label": int(v)}
                     for p, v in zip(ids[start:start + batch], labels[start:start + batch], strict=True)]
            fh.write(json.dumps({"items": items}) + "\n")
    return len(ids) // batch


def wrk(url: str, *, lua: Path | None, env: dict[str, str], threads: int, connections: int,
        duration: float) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from wrk --latency."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s"]
    if lua is not None:
        args += ["-s", str(lua)]
    out = subprocess.run([*args, url], capture_output=True, text=True, env={**os.environ, **env},
                         timeout=duration + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * UNITS[unit]

    return rps, pct("50"), pct("99")


def cpu_snapshot(server_pgid: int, url: str) -> dict[tuple[str, int], float]:
    """CPU seconds per process of the server's process group and of the PostgreSQL backends serving our
    database, from /proc: a contention-proof cost per label, whatever else the machine is running."""
    tick = os.sysconf("SC_CLK_TCK")
    engine = create_engine(url)
    with engine.connect() as conn:
        backends = {int(p) for (p,) in conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))}
    engine.dispose()
    out: dict[tuple[str, int], float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if int(fields[2]) == server_pgid:
            out[("server", int(entry.name))] = cpu
        elif int(entry.name) in backends:
            out[("postgres", int(entry.name))] = cpu
    return out


def cpu_delta(before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]) -> tuple[float, float]:
    """(server, postgres) CPU seconds spent between two snapshots (new processes count from 0)."""
    server = sum(v - before.get(k, 0.0) for k, v in after.items() if k[0] == "server")
    return server, sum(v - before.get(k, 0.0) for k, v in after.items() if k[0] == "postgres")


def settled_rows(url: str) -> int:
    """Feedback rows once in-flight requests have finished (unchanged for 0.5 s)."""
    last = -1
    while True:
        n = feedback_rows(url)
        if n == last:
            return n
        last = n
        time.sleep(0.5)


def feedback_rows(url: str) -> int:
    from service.db.tables import Feedback

    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.scalar(select(func.count()).select_from(Feedback)) or 0)
    engine.dispose()
    return n


def raw_insert_rate(url: str, ids: list[str], labels: np.ndarray, batch: int) -> float:
    """Floor: the same feedback rows, INSERT … ON CONFLICT DO NOTHING per batch, no statistics, no HTTP."""
    from service.db.tables import Feedback

    engine = create_engine(url)
    now = datetime.now(UTC)
    started = time.perf_counter()
    with engine.connect() as conn:
        for start in range(0, len(ids), batch):
            rows = [{"prediction_id": p, "label": int(v), "received_at": now}
                    for p, v in zip(ids[start:start + batch], labels[start:start + batch], strict=True)]
            conn.execute(postgresql.insert(Feedback).on_conflict_do_nothing(index_elements=["prediction_id"]), rows)
            conn.commit()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(ids) / elapsed


def handler_rate(url: str, model_dir: Path, ids: list[str], labels: np.ndarray, batch: int) -> float:
    """The feedback handler in-process, one thread, batches of ``batch`` (no HTTP, no JSON)."""
    from service.app import build_services
    from service.settings import Settings

    services = build_services(Settings(database_url=url, model_repository=model_dir.parent.parent))
    services.registry.load_all()
    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        results = services.feedback.submit_sync(list(zip(ids[start:start + batch], labels[start:start + batch].tolist(),
                                                     strict=True)))
        assert all(r.status == "accepted" for r in results), {r.status for r in results}
    elapsed = time.perf_counter() - started
    services.engine.dispose()
    return len(ids) / elapsed


def start_server(url: str, repository: Path, workers: int, port: int, multiproc: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CALIBSERVE_DATABASE_URL": url, "CALIBSERVE_MODEL_REPOSITORY": str(repository),
           "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("the server did not become ready within 60 s")


def main(argv: list[str] | None = None) -> None:
    from bench.drift_simulation import ensure_model
    from service.calibration import calibrator_from_dict
    from service.db.migrate import upgrade
    from service.repository.registry import load_version
    from service.training.data import load_bundled, split_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-connections", type=int, default=4, help="wrk connections for the 1,000-label run")
    parser.add_argument("--model-dir", type=Path, default=Path("models/digits/1"))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: scripts/install-system-packages.sh")
    model_dir = ensure_model(args.model_dir)
    load = os.getloadavg()[0]
    loaded = load_version(model_dir)
    calibrator = calibrator_from_dict(json.loads((model_dir / "calibrator.json").read_text()))
    split = split_dataset(load_bundled("digits"), seed=0)
    probs = calibrator.predict_proba(loaded.classifier.scores(split.X_test.astype(np.float64)))
    n_batch, n_single, n_base = int(60_000 * args.duration), int(6_000 * args.duration), 20_000
    total = n_batch + n_single + 2 * n_base
    labels = np.resize(split.y_test, total)
    url, name = fresh_database()
    work = Path(tempfile.mkdtemp(prefix="calibserve-ingest-"))
    proc = None
    try:
        upgrade(url)
        print(f"seeding {total:,} predictions into PostgreSQL …", flush=True)
        ids = seed_predictions(url, total, probs)
        batch_ids, single_ids = ids[:n_batch], ids[n_batch:n_batch + n_single]
        base_a, base_b = ids[n_batch + n_single:-n_base], ids[-n_base:]
        raw = raw_insert_rate(url, base_a, labels[n_batch + n_single:-n_base], 1000)
        handler = handler_rate(url, model_dir, base_b, labels[-n_base:], 1000)
        lua = work / "feedback.lua"
        lua.write_text(LUA)
        write_bodies(work / "batch.jsonl", batch_ids, labels[:n_batch], 1000)
        write_bodies(work / "single.jsonl", single_ids, labels[n_batch:n_batch + n_single], 1)
        port = httpx_free_port()
        proc = start_server(url, model_dir.parent.parent, args.workers, port, work)
        base = f"http://127.0.0.1:{port}"
        live = wrk(f"{base}/v2/health/live", lua=None, env={}, threads=2, connections=32, duration=args.duration)
        runs = {}
        for key, bodies, connections in (("batch", "batch.jsonl", args.batch_connections),
                                         ("single", "single.jsonl", 32)):
            rows_before, cpu_before = settled_rows(url), cpu_snapshot(proc.pid, url)
            result = wrk(base, lua=lua, env={"BENCH_BODIES": str(work / bodies), "BENCH_THREADS": "2"},
                         threads=2, connections=connections, duration=args.duration)
            labels_done = settled_rows(url) - rows_before
            runs[key] = (result, labels_done, *cpu_delta(cpu_before, cpu_snapshot(proc.pid, url)))
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        drop_database(name)
        shutil.rmtree(work, ignore_errors=True)

    (batch, batch_n, batch_srv, batch_pg), (single, single_n, single_srv, single_pg) = runs["batch"], runs["single"]
    batch_labels, single_labels = batch[0] * 1000, single[0]
    print(f"\nPostgreSQL, {args.workers} uvicorn workers, {args.duration:g} s per wrk run, {os.cpu_count()} CPUs "
          f"shared with wrk and PostgreSQL (load average before: {load:.1f}); every label is a new accepted row + its "
          "statistics. CPU ms/label from /proc: server processes + the PostgreSQL backends of the bench database")
    header = (f"{'path':52s} {'labels/s':>9s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'CPU ms/label':>13s} "
              f"{'ratio':>12s}")
    print(header + "\n" + "-" * len(header))
    rows = [
        (f"ours over HTTP, batches of 1,000 (wrk c={args.batch_connections})", batch_labels, batch[0], batch[1],
         batch[2],
         f"{1e3 * batch_srv / batch_n:.3f}+{1e3 * batch_pg / batch_n:.3f}", f"{batch_labels / raw:.2f}× floor"),
        ("ours in-process handler, batches of 1,000", handler, handler / 1000, None, None, "",
         f"{handler / raw:.2f}× floor"),
        ("bare INSERT … ON CONFLICT, batches of 1,000 (floor)", raw, raw / 1000, None, None, "", "1.00× floor"),
        ("ours over HTTP, one label per request (wrk c=32)", single_labels, single[0], single[1], single[2],
         f"{1e3 * single_srv / single_n:.3f}+{1e3 * single_pg / single_n:.3f}", f"{single[0] / live[0]:.2f}× live"),
        ("GET /v2/health/live (HTTP floor, wrk c=32)", None, live[0], live[1], live[2], "", "1.00× live"),
    ]
    for label, lps, rps, p50, p99, cpu, ratio in rows:
        print(f"{label:52s} {_cell(lps, ',.0f'):>9s} {_cell(rps, ',.0f'):>8s} {_cell(p50, '.1f'):>7s} "
              f"{_cell(p99, '.1f'):>7s} {cpu:>13s} {ratio:>12s}")
    print(f"(labels accepted during the runs: {batch_n:,} batched, {single_n:,} single — each counted once)")
    print(f"\ntarget ≥ 20,000 labels/s in batches of 1,000: {'PASS' if batch_labels >= 20_000 else 'FAIL'} "
          f"({batch_labels / 20_000:.2f}× target);  target ≥ 1,000 single-label requests/s: "
          f"{'PASS' if single[0] >= 1_000 else 'FAIL'} ({single[0] / 1_000:.2f}× target)")


def httpx_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cell(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
