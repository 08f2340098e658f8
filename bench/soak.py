"""Soak: N minutes of mixed traffic against a real ``calibserve serve``; p99 per minute per endpoint, RSS, errors.

``python -m bench soak [--minutes 10] [--clients 4] [--predict-load 0] [--predict-rate R] [--database-url URL]
[--repository DIR] [--split] [--no-control-process] [--label-delay S]``.
``--clients`` threads loop over a mix: v1 predict (batch 1 and 16), v2 infer, feedback for earlier ids,
the calibration window, the models list and readiness. ``--predict-load C`` adds ``wrk`` with C connections
hammering v1 predict the whole time (the SQLite lock-starvation check: feedback and calibration p99 must
stay ≤ 100 ms under ≥ 2,000 predictions/s); ``--predict-rate R`` paces those connections to about R/s
instead of as fast as the server answers. Prints p99 (ms) per minute and endpoint, totals, errors (any
non-2xx or transport error), the server's RSS at start and end, its own event-loop lag and SQLite
write-lock wait over the run (``/metrics`` scraped before and after: where the waiting went) and the CPU of
its last gauge refresh. ``--split`` starts a second server on the same database and sends feedback, the
calibration window, the models list and readiness there: the control plane in a process of its own, the
deployment docs/deployment.md describes; labels then wait ``RIPE_SECONDS`` for their predictions to ship.
The server runs as ``calibserve serve`` does by default: feedback and the calibration queries are forwarded
to its control process (service/control_process.py); ``--no-control-process`` serves them beside predict.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

from bench._hostile_cases import ROW
from bench.hostile import Server, serve
from bench.serve.proc import live_children

CONTROL = b"service.control_process"  # the server's control process, on its command line
ENDPOINTS = ("v1_predict", "v1_predict_16", "v2_infer", "feedback", "calibration", "models", "ready")
LUA = 'wrk.method = "POST"\nwrk.body = os.getenv("BODY")\nwrk.headers["Content-Type"] = "application/json"\n'
# paced load: each connection waits DELAY_MS before each request, so C connections send at most C/DELAY
RIPE_SECONDS = 0.5  # --split: the control server cannot ship the predict server's spool: labels wait
PACED = 'local pause = tonumber(os.getenv("DELAY_MS"))\nfunction delay()\n  return pause\nend\n'


def rss_mib(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


class Recorder:
    def __init__(self, started: float) -> None:
        self.started = started
        self.lock = threading.Lock()
        self.latency: dict[tuple[int, str], list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.unknown = 0  # feedback items answered `unknown` (their prediction not yet in the database)

    def count_unknown(self, n: int) -> None:
        with self.lock:
            self.unknown += n

    def record(self, endpoint: str, seconds: float, ok: bool, detail: str = "") -> None:
        minute = int((time.monotonic() - self.started) // 60)
        with self.lock:
            self.latency[(minute, endpoint)].append(seconds)
            if not ok:
                self.errors[endpoint] += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{endpoint}: {detail[:200]}")


def _client_loop(base: str, rec: Recorder, stop: threading.Event, seed: int, control: str | None = None,
                 ripe_after: float = 0.0) -> None:
    """The mix against ``base``; with ``control``, feedback, calibration, models and readiness go there instead
    (``--split``), and feedback labels only predictions served ``ripe_after`` seconds ago or earlier."""
    rng = random.Random(seed)
    pending: list[tuple[str, int, float]] = []
    x = np.random.default_rng(seed).normal(size=(64, 64)).clip(-3, 3).tolist()
    with httpx.Client(base_url=base, timeout=30) as client, \
            httpx.Client(base_url=control or base, timeout=30) as queries:
        while not stop.is_set():
            endpoint = rng.choices(ENDPOINTS, weights=(40, 10, 15, 15, 8, 6, 6))[0]
            t0 = time.perf_counter()
            try:
                if endpoint == "v1_predict":
                    r = client.post("/v1/models/digits/predict", json={"instances": [rng.choice(x)]})
                    if r.status_code == 200:
                        pending += [(p["prediction_id"], p["class_index"], time.monotonic())
                                    for p in r.json()["predictions"]]
                elif endpoint == "v1_predict_16":
                    r = client.post("/v1/models/digits/predict", json={"instances": rng.sample(x, 16),
                                                                       "tags": {"soak": "yes"}})
                elif endpoint == "v2_infer":
                    r = client.post("/v2/models/digits/infer", json={"inputs": [
                        {"name": "input", "datatype": "FP32", "shape": [1, 64], "data": rng.choice(x)}]})
                elif endpoint == "feedback":
                    batch = [q for q in pending[:20] if time.monotonic() - q[2] >= ripe_after]
                    pending = pending[len(batch):]
                    items = [{"prediction_id": p, "label": k if rng.random() < 0.8 else rng.randrange(10)}
                             for p, k, _ in batch] or [{"prediction_id": "not-a-uuid", "label": 0}]
                    r = queries.post("/v1/feedback", json={"items": items})
                    if r.status_code == 200:
                        rec.count_unknown(sum(item["status"] == "unknown" for item in r.json()["items"]))
                elif endpoint == "calibration":
                    r = queries.get("/v1/models/digits/versions/1/calibration", params={"window": "15m"})
                elif endpoint == "models":
                    r = queries.get("/v1/models")
                else:
                    r = queries.get("/v2/health/ready")
                rec.record(endpoint, time.perf_counter() - t0, r.status_code < 300, f"{r.status_code} {r.text}")
            except httpx.HTTPError as exc:
                rec.record(endpoint, time.perf_counter() - t0, False, repr(exc))


def _wrk(base: str, connections: int, seconds: int, work: Path, rate: float | None) -> subprocess.Popen[str]:
    """wrk on v1 predict: closed loop (as fast as the server answers) or, with ``rate``, paced to about
    that many requests/s (an open-ish load that leaves the server headroom, as production traffic does)."""
    env = {"BODY": json.dumps({"instances": [ROW]}), "PATH": "/usr/bin:/bin"}
    script = LUA
    if rate:
        env["DELAY_MS"] = str(max(1, int(1000 * connections / rate)))
        script += PACED
    (work / "predict.lua").write_text(script)
    return subprocess.Popen(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(work / "predict.lua"),
                             f"{base}/v1/models/digits/predict"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


WAITS = {"calibserve_event_loop_lag_seconds": "event-loop lag",
         "calibserve_sqlite_write_lock_wait_seconds": "SQLite write-lock wait"}


def wait_buckets(base: str) -> dict[str, dict[float, float]]:
    """The server's own wait histograms (``/metrics``): name → {upper bound: cumulative count}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[float, float]] = {name: {} for name in WAITS}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text):
        if family.name in out:
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    out[family.name][float(sample.labels["le"])] = sample.value
    return out


def gauge_value(base: str, name: str) -> float | None:
    """One unlabelled gauge of the server's ``/metrics`` (None while it is absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text):
        if family.name == name and family.samples:
            return float(family.samples[0].value)
    return None


def wait_quantile(before: dict[float, float], after: dict[float, float], q: float) -> tuple[float, float]:
    """(observations, the upper bound of the bucket holding quantile q) of what was observed in between."""
    counts = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = counts[-1][1] if counts else 0.0
    return total, next((le for le, c in counts if total and c >= q * total), float("nan"))


def soak(server: Server, minutes: float, clients: int, predict_load: int, work: Path,
         rate: float | None = None, control: Server | None = None, label_delay: float | None = None) -> None:
    waits_start = wait_buckets(server.base_url)
    rss_start = rss_mib(server.pid)
    started = time.monotonic()
    rec = Recorder(started)
    stop = threading.Event()
    wrk = _wrk(server.base_url, predict_load, int(minutes * 60), work, rate) if predict_load else None
    delay = label_delay if label_delay is not None else RIPE_SECONDS if control is not None else 0.0
    split = (control.base_url if control is not None else None, delay)
    threads = [threading.Thread(target=_client_loop, args=(server.base_url, rec, stop, i, *split), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(minutes * 60)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    wrk_out = wrk.communicate(timeout=120)[0] if wrk else ""
    rss_end = rss_mib(server.pid)
    n_minutes = max(m for m, _ in rec.latency) + 1 if rec.latency else 0
    print(f"| minute | {' | '.join(f'{e:>14s}' for e in ENDPOINTS)} |   (p99 ms; requests in brackets)")
    print(f"|--------|{'|'.join('-' * 16 for _ in ENDPOINTS)}|")
    for m in range(n_minutes):
        cells = []
        for e in ENDPOINTS:
            lat = rec.latency.get((m, e), [])
            cells.append(f"{np.percentile(lat, 99) * 1000:6.1f} ({len(lat):5d})" if lat else f"{'-':>14s}")
        print(f"| {m + 1:6d} | {' | '.join(cells)} |")
    total = {e: sum(len(v) for (_, k), v in rec.latency.items() if k == e) for e in ENDPOINTS}
    overall = {e: np.percentile([x for (_, k), v in rec.latency.items() if k == e for x in v], 99) * 1000
               for e in ENDPOINTS if total[e]}
    cells = [f"{overall.get(e, float('nan')):6.1f} ({total[e]:5d})" for e in ENDPOINTS]
    print(f"| all    | {' | '.join(cells)} |")
    print(f"\nerrors: {dict(rec.errors) or 0}   {rec.error_samples}")
    print(f"feedback items answered `unknown`: {rec.unknown}; labels only for predictions served ≥ {delay:g} s before"
          + ("; --split: feedback, calibration, models and ready went to a second server on the same database"
             if control is not None else ""))
    print(f"server RSS: start {rss_start:.1f} MiB, end {rss_end:.1f} MiB ({rss_end - rss_start:+.1f} MiB)"
          + "".join(f"; control process {rss_mib(pid):.1f} MiB" for pid in live_children(server.pid, CONTROL)))
    waits_end = wait_buckets(server.base_url)
    for name, what in WAITS.items():  # where a request's waiting went, from the server's side
        n, p99 = wait_quantile(waits_start[name], waits_end[name], 0.99)
        _, p50 = wait_quantile(waits_start[name], waits_end[name], 0.5)
        print(f"server {what}: {n:.0f} observations, p50 ≤ {p50 * 1000:g} ms, p99 ≤ {p99 * 1000:g} ms")
    refresh = gauge_value(server.base_url, "calibserve_monitor_refresh_cpu_seconds")
    print(f"server's last gauge refresh: {'-' if refresh is None else f'{refresh * 1000:.0f} ms'} of CPU "
          "(label-shift bootstrap included; the next waits ≥ 20× that)")
    if wrk_out:
        rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk_out)
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", wrk_out)
        served = float(rps.group(1)) if rps else float("nan")
        paced = f", paced at {rate:.0f}/s" if rate else ", closed loop"
        print(f"background predict load (wrk -c{predict_load}{paced}): {served:.0f} predictions/s, "
              f"non-2xx {non2xx.group(1) if non2xx else 0}")
        for e in ("feedback", "calibration"):
            if e in overall:
                ok = overall[e] <= 100 and served >= 2000
                print(f"  {e} p99 under that load: {overall[e]:.1f} ms ({'PASS' if ok else 'FAIL'}: ≤ 100 ms "
                      "under ≥ 2,000 predictions/s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4, help="mixed-traffic client threads")
    parser.add_argument("--predict-load", type=int, default=0, help="wrk connections on v1 predict (0 = off)")
    parser.add_argument("--predict-rate", type=float, help="pace the wrk load to about this many predictions/s "
                        "(default: closed loop, as fast as the server answers)")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--split", action="store_true",
                        help="serve feedback, calibration, models and readiness from a second calibserve on the same "
                             "database (the control plane on its own process; predict load stays on the first)")
    parser.add_argument("--no-control-process", action="store_true",
                        help="serve with `--no-control-process`: feedback and the calibration queries run in the "
                             "serving process, beside predict (the default forwards them to the server's child)")
    parser.add_argument("--label-delay", type=float, help="label a prediction only this many seconds after it was "
                        f"served (default 0; {RIPE_SECONDS} with --split)")
    parser.add_argument("--repository", type=Path, help="a repository with the digits model (else trained)")
    args = parser.parse_args(argv)
    if args.predict_load and shutil.which("wrk") is None:
        parser.error("--predict-load needs wrk on PATH (scripts/install-system-packages.sh)")
    work = Path(tempfile.mkdtemp(prefix="calibserve-soak-"))
    try:
        database_url = args.database_url or f"sqlite:///{work / 'calibserve.db'}"
        (work / "control").mkdir()
        options = {"control_process": "false"} if args.no_control_process else {}
        with serve(work, args.repository, database_url, **options) as server, contextlib.ExitStack() as stack:
            control = stack.enter_context(serve(work / "control", work / "models", database_url,
                                                spool_dir=work / "control" / "spool")) if args.split else None
            soak(server, args.minutes, args.clients, args.predict_load, work, args.predict_rate, control,
                 args.label_delay)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
