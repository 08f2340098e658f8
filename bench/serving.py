"""Serving benchmark: ``python -m bench.serving [--duration 3] [--repeat 3] [--repository DIR]``.

Side by side on the demo digits MLP, in one run: (a) raw onnxruntime in-process, (b) the ten-minute
FastAPI + onnxruntime endpoint (``bench/baseline_app.py``), (c) our ``/v1`` predict, (d) our ``/v2`` infer
with JSON and with binary tensors — batch 1 and 64, concurrency 1, 8 and 32, load from ``wrk`` (a Lua
script POSTs the body). Ours runs as shipped: calibration, SQLite prediction log and metrics all on.
Each cell is the median of ``--repeat`` runs whose rounds interleave the targets (a shared machine is
noisy), and every run starts after our prediction-log backlog has drained. Prints req/s, rows/s, p50, p99,
the ratio to the baseline measured in the same run and the log backlog, then the servers' RSS and
start-to-ready times, and the issue's targets as PASS/FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

LUA = """
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local h = os.getenv("BENCH_IHCL")
if h and h ~= "" then wrk.headers["Inference-Header-Content-Length"] = h end
"""
BATCHES = (1, 64)
CONCURRENCY = (1, 8, 32)
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class Result:
    key: str  # a, b, c, d-json, d-binary
    target: str
    batch: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    backlog: int = 0  # our prediction-log queue depth (requests) right after the run

    @property
    def rows(self) -> float:
        return self.rps * self.batch


@dataclass
class Case:
    """One HTTP target: where to POST and a body file per batch size (plus the binary header length)."""

    key: str
    name: str
    url: str
    bodies: dict[int, tuple[Path, str, str]]  # batch -> (file, content type, Inference-Header-Content-Length)


def train(repository: Path) -> Path:
    from service.training.pipeline import train_and_export

    return train_and_export(dataset="digits", loss="flsd53", name="digits", version=1, repository=repository,
                            calibrator="temperature", curvature=False, progress=False)


def write_bodies(work: Path, rows: np.ndarray) -> dict[str, dict[int, tuple[Path, str, str]]]:
    out: dict[str, dict[int, tuple[Path, str, str]]] = {"v1": {}, "v2": {}, "v2bin": {}}
    for b in BATCHES:
        x = rows[:b].astype(np.float32)
        v1, v2, v2bin = work / f"v1_{b}.json", work / f"v2_{b}.json", work / f"v2_{b}.bin"
        v1.write_text(json.dumps({"instances": x.tolist()}))
        v2.write_text(json.dumps({"inputs": [{"name": "input", "shape": [b, 64], "datatype": "FP32",
                                              "data": x.reshape(-1).tolist()}]}))
        header = json.dumps({"inputs": [{"name": "input", "shape": [b, 64], "datatype": "FP32",
                                         "parameters": {"binary_data_size": x.nbytes}}],
                             "parameters": {"binary_data_output": True}}).encode()
        v2bin.write_bytes(header + x.tobytes())
        out["v1"][b] = (v1, "application/json", "")
        out["v2"][b] = (v2, "application/json", "")
        out["v2bin"][b] = (v2bin, "application/octet-stream", str(len(header)))
    return out


def bench_onnxruntime(model: Path, rows: np.ndarray, seconds: float) -> list[Result]:
    """(a) ``session.run`` in-process, one thread, no HTTP: the floor every server adds to."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    results = []
    for b in BATCHES:
        x = rows[:b].astype(np.float32)
        times: list[float] = []
        deadline = time.perf_counter() + min(seconds, 2.0)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            session.run(None, {"input": x})
            times.append(time.perf_counter() - t0)
        t = np.asarray(times[10:]) * 1e3
        results.append(Result("a", "(a) onnxruntime in-process", b, 1, 1e3 / t.mean(), float(np.percentile(t, 50)),
                              float(np.percentile(t, 99))))
    return results


def start(args: list[str], env: dict[str, str], ready_url: str, log: Path,
          cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], float]:
    """Start a server; returns the process and seconds from process start to its first 200 on ``ready_url``.
    ``cwd``: serve the ``service`` package of another checkout (``python -m`` puts the cwd first on the path)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", *args, "--no-access-log", "--log-level", "warning"],
                            env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=cwd)
    while time.perf_counter() - started < 60:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return proc, time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise TimeoutError(ready_url)


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kib = {k: int(re.search(rf"{k}:\s+(\d+)", status).group(1)) for k in ("VmRSS", "VmHWM")}  # type: ignore[union-attr]
    return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024


def wrk(url: str, body: tuple[Path, str, str], concurrency: int, seconds: float, lua: Path) -> tuple[float, float,
                                                                                                      float, int]:
    env = {**os.environ, "BENCH_BODY": str(body[0]), "BENCH_CONTENT_TYPE": body[1], "BENCH_IHCL": body[2]}
    out = subprocess.run(["wrk", f"-t{min(concurrency, 2)}", f"-c{concurrency}", f"-d{int(seconds)}s", "-s", str(lua),
                          "--latency", url], env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, pct("50"), pct("99"), int(errors.group(1)) if errors else 0


def log_backlog(base_url: str) -> int:
    """Requests whose prediction rows are still queued for the database (0 for the baseline)."""
    body = httpx.get(f"{base_url}/v2/health/ready", timeout=10).json()
    return int(body["prediction_log"]["queue_depth"])


def drain(base_url: str, timeout: float = 120.0) -> None:
    """Wait until the writer has caught up, so one run's backlog does not slow the next one down."""
    deadline = time.monotonic() + timeout
    while log_backlog(base_url) and time.monotonic() < deadline:
        time.sleep(0.2)


def table(results: list[Result]) -> str:
    base = {(r.batch, r.concurrency): r for r in results if r.key == "b"}
    lines = [f"| {'target':28} | batch | conc |   req/s |    rows/s | p50 ms | p99 ms | req/s ÷ (b) | rows/s ÷ (b) |"
             " errors | log backlog |", "|" + "|".join("-" * w for w in (30, 7, 6, 9, 11, 8, 8, 13, 14, 8, 13)) + "|"]
    for r in sorted(results, key=lambda r: (r.batch, r.concurrency, r.target)):
        b = base.get((r.batch, r.concurrency))
        ratio = f"{r.rps / b.rps:11.2f}×" if b else " " * 12  # same batch: rows/s ratio = req/s ratio
        lines.append(f"| {r.target:28} | {r.batch:5} | {r.concurrency:4} | {r.rps:7.0f} | {r.rows:9.0f} | "
                     f"{r.p50_ms:6.2f} | {r.p99_ms:6.2f} | {ratio} | {ratio} | {r.errors:6} | {r.backlog:11} |")
    return "\n".join(lines)


def checks(results: list[Result], memory: dict[str, tuple[float, float]], ready: dict[str, float]) -> list[str]:
    get = {(r.key, r.batch, r.concurrency): r for r in results}
    out = []
    for key, label in (("c", "(c) /v1"), ("d-json", "(d) /v2 JSON"), ("d-binary", "(d) /v2 binary")):
        r, b = get[(key, 1, 8)], get[("b", 1, 8)]
        out.append(f"{'PASS' if r.rps >= 0.8 * b.rps else 'FAIL'}  {label} req/s at c=8 batch 1: "
                   f"{r.rps / b.rps:.2f}× baseline (target ≥ 0.8×)")
        out.append(f"{'PASS' if r.p99_ms <= 5 else 'FAIL'}  {label} p99 at c=8 batch 1: {r.p99_ms:.2f} ms (≤ 5 ms)")
        r64, b64 = get[(key, 64, 8)], get[("b", 64, 8)]
        out.append(f"{'PASS' if r64.rows >= 1.5 * b64.rows else 'FAIL'}  {label} rows/s at c=8 batch 64: "
                   f"{r64.rows / b64.rows:.2f}× baseline (target ≥ 1.5×)")
    (rss, peak), (base_rss, base_peak) = memory["ours"], memory["baseline"]
    out.append(f"{'PASS' if rss <= 150 else 'FAIL'}  our server RSS {rss:.0f} MiB when ready, peak {peak:.0f} MiB "
               f"under load (≤ 150 MiB); baseline {base_rss:.0f} / {base_peak:.0f} MiB")
    out.append(f"{'PASS' if ready['ours'] <= 2 else 'FAIL'}  ours ready {ready['ours']:.2f} s after process start "
               f"(≤ 2 s); baseline {ready['baseline']:.2f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median (by req/s) is shown")
    parser.add_argument("--repository", type=Path, help="an existing repository with digits/1 (skips training)")
    parser.add_argument("--compare-tree", type=Path,
                        help="another checkout (e.g. a git worktree of an earlier commit): its /v1 and /v2 join "
                             "the same run as '(e) … before', on their own SQLite database")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    from sklearn.datasets import load_digits

    rows = load_digits().data
    with tempfile.TemporaryDirectory(prefix="calibserve-bench-") as tmp:
        work = Path(tmp)
        repository = args.repository or work / "models"
        if args.repository is None:
            print("training the digits demo model …", flush=True)
            train(repository)
        model = repository / "digits" / "1" / "model.onnx"
        (work / "post.lua").write_text(LUA)
        bodies = write_bodies(work, rows)
        from service.db.migrate import upgrade

        db = f"sqlite:///{work / 'bench.db'}"
        upgrade(db)
        results = bench_onnxruntime(model, rows, args.duration)
        base_proc, base_ready = start(["bench.baseline_app:app", "--port", "18702"], {"BASELINE_MODEL": str(model)},
                                      "http://127.0.0.1:18702/health", work / "baseline.log")
        ours_env = {"CALIBSERVE_DATABASE_URL": db, "CALIBSERVE_MODEL_REPOSITORY": str(repository)}
        ours_proc, ours_ready = start(["--factory", "service.app:create_app", "--port", "18701"], ours_env,
                                      "http://127.0.0.1:18701/v2/health/ready", work / "ours.log")
        idle = {"ours": rss_mib(ours_proc.pid)[0], "baseline": rss_mib(base_proc.pid)[0]}
        ours = "http://127.0.0.1:18701"
        cases = [Case("b", "(b) baseline FastAPI", "http://127.0.0.1:18702/predict", bodies["v1"]),
                 Case("c", "(c) /v1 predict", f"{ours}/v1/models/digits/predict", bodies["v1"]),
                 Case("d-json", "(d) /v2 infer JSON", f"{ours}/v2/models/digits/infer", bodies["v2"]),
                 Case("d-binary", "(d) /v2 infer binary", f"{ours}/v2/models/digits/infer", bodies["v2bin"])]
        procs = [base_proc, ours_proc]
        if args.compare_tree is not None:
            before_db = f"sqlite:///{work / 'before.db'}"
            upgrade(before_db)
            before_proc, _ = start(["--factory", "service.app:create_app", "--port", "18703"],
                                   {**ours_env, "CALIBSERVE_DATABASE_URL": before_db},
                                   "http://127.0.0.1:18703/v2/health/ready", work / "before.log",
                                   cwd=args.compare_tree.resolve())
            procs.append(before_proc)
            before = "http://127.0.0.1:18703"
            cases += [Case("e-v1", "(e) /v1 predict before", f"{before}/v1/models/digits/predict", bodies["v1"]),
                      Case("e-json", "(e) /v2 JSON before", f"{before}/v2/models/digits/infer", bodies["v2"])]
        try:
            for case in cases:  # warm-up: first requests pay for lazy imports and allocator growth
                wrk(case.url, case.bodies[1], 2, 1, work / "post.lua")
            for b in BATCHES:
                for c in CONCURRENCY:  # targets back to back per cell, so machine noise hits them alike
                    runs: dict[str, list[Result]] = {case.key: [] for case in cases}
                    for _ in range(args.repeat):  # rounds interleave the targets; the median run is kept
                        for case in cases:
                            for p_url in {ours, *(["http://127.0.0.1:18703"] if args.compare_tree else [])}:
                                drain(p_url)  # a log written in the background would slow any run down
                            rps, p50, p99, errors = wrk(case.url, case.bodies[b], c, args.duration,
                                                        work / "post.lua")
                            backlog = log_backlog(case.url.split("/v")[0]) if case.key != "b" else 0
                            runs[case.key].append(Result(case.key, case.name, b, c, rps, p50, p99, errors,
                                                         backlog))
                            print(f"  {case.name:22} batch {b:2} c={c:2}: {rps:8.0f} req/s  p99 {p99:6.2f} ms",
                                  flush=True)
                    for case_runs in runs.values():
                        results.append(sorted(case_runs, key=lambda r: r.rps)[len(case_runs) // 2])
            memory = {k: (idle[k], rss_mib(p.pid)[1]) for k, p in (("ours", ours_proc), ("baseline", base_proc))}
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
        print()
        print(table(results))
        print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; median of {args.repeat} "
              f"wrk runs of {args.duration} s per cell; log backlog = requests whose rows the writer had not "
              "stored when wrk stopped (each run starts after the previous backlog drained)\n")
        print("\n".join(checks(results, memory, {"ours": ours_ready, "baseline": base_ready})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
