"""A real server with two uvicorn workers (prometheus-client multiprocess mode) on PostgreSQL, scraped by
Debian's real ``prometheus`` running our recording rules: the per-bin counters on /metrics sum to exactly
the labels accepted, the PromQL ECE equals the service's own ECE for the same labels, and every query of
the Grafana dashboard (panels, annotations, template variables) parses and returns data."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.app import build_services
from service.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.deploy.test_grafana import DASHBOARD, queries
from tests.e2e.server import free_port
from tests.factories import digits

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "calibration.rules.yml"
LABELS = '{model="digits",version="1",calibrator="1"}'


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own process group (uvicorn's workers included), ended by that group's id."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: list[subprocess.Popen[bytes]],
             logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        try:
            value = check()
            if value:
                return value
        except (httpx.TransportError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.25)
    tails = "\n".join(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{tails}")


def post_labels(service: str, items: list[dict[str, Any]], patience: float = 10.0) -> int:
    """Post labels as a client is told to: an ``unknown`` item (its row may still be in the other worker's
    spool) is retried until accepted. Returns how many were accepted; anything else fails the test."""
    accepted, deadline = 0, time.monotonic() + patience
    while items:
        r = httpx.post(f"{service}/v1/feedback", json={"items": items}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        accepted += body["counts"].get("accepted", 0)
        assert set(body["counts"]) <= {"accepted", "unknown"}, r.text
        retry = {i["prediction_id"] for i in body["items"] if i["status"] == "unknown"}
        items = [i for i in items if i["prediction_id"] in retry]
        assert not items or time.monotonic() < deadline, f"still unknown after {patience}s: {r.text[:500]}"
        time.sleep(0.1 if items else 0)
    return accepted


def promql(base: str, query: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": query}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(base: str, query: str) -> float | None:
    result = promql(base, query)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def scrape_sum(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_workers_and_a_real_prometheus_agree_with_the_service(database_url: str, model_repository: Path,
                                                                  tmp_path: Path) -> None:
    prometheus_exe, promtool_exe = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus_exe is None or promtool_exe is None:
        pytest.fail("prometheus and promtool are required: run scripts/install-system-packages.sh")
    multiproc = tmp_path / "prom-multiproc"
    multiproc.mkdir()
    port, prom_port = free_port(), free_port()
    service, prom = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prom_port}"
    env = {**os.environ, "CALIBSERVE_DATABASE_URL": database_url,
           "CALIBSERVE_MODEL_REPOSITORY": str(model_repository), "CALIBSERVE_ADMIN_TOKEN": ADMIN_TOKEN,
           "CALIBSERVE_MONITOR_INTERVAL_SECONDS": "1", "CALIBSERVE_CALIBRATOR_POLL_SECONDS": "0.5",
           "CALIBSERVE_LOG_FLUSH_SECONDS": "0.01", "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
           # a 30 s monitoring window whose first 30 s after activation are the reference period, so the
           # label-free shift gauges (PSI, KS) exist within the test's minute, as they do after an hour live
           "CALIBSERVE_DEFAULT_WINDOW": "30s", "CALIBSERVE_DRIFT_REFERENCE_WINDOWS": "1",
           "CALIBSERVE_BUCKET_SECONDS": "5",
           "PYTHONUNBUFFERED": "1"}
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        f"  - {{job_name: calibserve, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}\n")
    logs = [tmp_path / "server.log", tmp_path / "prometheus.log"]
    server_cmd = [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port),
                  "--workers", "2"]
    prom_cmd = [prometheus_exe, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"]

    # Register the card calibrator once before two workers start: on a fresh database both workers would
    # insert calibrator 1 concurrently and one dies on the unique constraint (a registry race reported to
    # the lead; this test is about metrics, not about that race).
    services = build_services(Settings(database_url=database_url, model_repository=model_repository))
    services.registry.load_all()
    services.engine.dispose()

    with process(server_cmd, env, logs[0]) as server:
        wait_for("the service to be ready", lambda: httpx.get(f"{service}/v2/health/ready", timeout=1)
                 .status_code == 200, 60, [server], logs[:1])
        x, y = digits()
        n = 320
        ids: list[str] = []
        for start in range(0, n, 20):  # a fresh connection each: the kernel spreads them over both workers
            r = httpx.post(f"{service}/v1/models/digits/predict", json={"instances": x[start:start + 20].tolist()},
                           timeout=30)
            assert r.status_code == 200, r.text
            ids += [p["prediction_id"] for p in r.json()["predictions"]]

        with process(prom_cmd, dict(os.environ), logs[1]) as prometheus:
            procs = [server, prometheus]
            # every per-bin series is created at 0 before any label, and Prometheus has scraped it at 0
            wait_for("zero-valued bin series in Prometheus",
                     lambda: scalar(prom, f"count(calibserve_calibration_bin_count_total{LABELS} == 0)") == 15,
                     60, procs, logs)
            time.sleep(2.5)  # a few scrapes at 0
            accepted = 0
            for start in range(0, n, 40):
                items = [{"prediction_id": p, "label": int(v)}
                         for p, v in zip(ids[start:start + 40], y[start:start + 40], strict=True)]
                accepted += post_labels(service, items)
            assert accepted == n

            # (1) /metrics aggregates both workers: the counters sum to exactly the labels accepted
            assert scrape_sum(service, "calibserve_calibration_bin_count_total") == accepted
            pids = {f.name.split("_")[-1] for f in multiproc.glob("counter_*.db")}
            assert len(pids) >= 2, f"expected two workers' files, got {sorted(multiproc.iterdir())}"
            text = httpx.get(f"{service}/metrics", timeout=5).text
            checked = subprocess.run([promtool_exe, "check", "metrics"], input=text, capture_output=True, text=True,
                                     timeout=30, check=False)
            assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), checked.stdout

            # (2) the recording rules see every label, then agree with the service's ECE
            wait_for("Prometheus to record every label",
                     lambda: scalar(prom, f"calibserve:calibration_labelled:lifetime{LABELS}") == accepted
                     and scalar(prom, f"calibserve:calibration_labelled:increase1h{LABELS}") is not None,
                     60, procs, logs)
            own = httpx.get(f"{service}/v1/models/digits/versions/1/calibration",
                            params={"window": "1h", "bins": 15}, timeout=30).json()
            assert own["labelled"] == accepted
            for rule, field in (("ece", "ece"), ("mce", "mce"), ("confidence_accuracy_gap", "confidence_accuracy_gap")):
                lifetime = scalar(prom, f"calibserve:calibration_{rule}:lifetime{LABELS}")
                windowed = scalar(prom, f"calibserve:calibration_{rule}:1h{LABELS}")
                assert lifetime is not None and windowed is not None, rule
                assert lifetime == pytest.approx(own[field], abs=1e-6), rule
                # increase() extrapolates every series of one target by the same factor: ratios survive
                assert windowed == pytest.approx(own[field], abs=1e-6), rule
            reliability = {int(r["metric"]["bin"]): float(r["value"][1])
                           for r in promql(prom, f"calibserve:calibration_bin_accuracy:1h{LABELS}")}
            expected = {row["bin"]: row["accuracy"] for row in own["reliability"] if row["count"]}
            assert reliability.keys() == expected.keys()
            assert np.allclose([reliability[b] for b in expected], list(expected.values()), atol=1e-9)

            # (3) every Grafana query returns data. Mislabel 300 more predictions, so that 620 labels in the
            # hour make the model overconfident: CalibserveOverconfident turns pending and ALERTS has a series.
            more: list[str] = []
            for start in range(n, n + 300, 50):
                r = httpx.post(f"{service}/v1/models/digits/predict",
                               json={"instances": x[start:start + 50].tolist()}, timeout=30)
                more += [p["prediction_id"] for p in r.json()["predictions"]]
            wrong = [{"prediction_id": p, "label": int((v + 1) % 10)}
                     for p, v in zip(more, y[n:n + 300], strict=True)]
            assert post_labels(service, wrong) == 300
            rows = itertools.cycle(range(n + 300, len(x) - 10, 10))

            def traffic_then(query: Callable[[], Any]) -> Any:
                # traffic keeps flowing while we wait, as in production: the 30 s window is never empty, so
                # the label-free shift gauges (current window vs the reference period) get computed
                start = next(rows)
                httpx.post(f"{service}/v1/models/digits/predict", json={"instances": x[start:start + 10].tolist()},
                           timeout=30)
                return query()

            for expr in grafana_queries():
                wait_for(f"data for the dashboard query {expr}",
                         lambda e=expr: traffic_then(lambda: promql(prom, e)), 120, procs, logs)
            for metric, label in grafana_label_values():
                wait_for(f"label_values({metric}, {label})",
                         lambda m=metric, lab=label: label_values(prom, m, lab) == ["digits" if lab == "model"
                                                                                      else "1"], 30, procs, logs)


def grafana_queries() -> list[str]:
    """The dashboard's PromQL with Grafana's variables bound as Grafana would for "All" (regex ``.+``)."""
    exprs = [e.replace("$__rate_interval", "1m").replace("$model", ".+").replace("$version", ".+")
             for e in queries()]
    assert len(exprs) >= 18
    return exprs


def grafana_label_values() -> list[tuple[str, str]]:
    """Template variables ``label_values(metric{…}, label)``: Grafana asks Prometheus's label-values API."""
    board = json.loads(DASHBOARD.read_text())
    found = []
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+)(?:\{[^}]*\})?, (\w+)\)", var["definition"])
            assert m, var["definition"]
            found.append((m.group(1), m.group(2)))
    assert {label for _, label in found} == {"model", "version"}
    return found


def label_values(base: str, metric: str, label: str) -> list[str]:
    body = httpx.get(f"{base}/api/v1/label/{label}/values", params={"match[]": metric}, timeout=5).json()
    assert body["status"] == "success", body
    values: list[str] = body["data"]
    return values
