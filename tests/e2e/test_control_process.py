"""``calibserve serve --control-process``: one port, feedback and the calibration queries answered by a child
process. A label posted right after its prediction is accepted (the serving process flushes its spool first),
the answers are the ones the service gives without the child, a dead child answers 503 + Retry-After until
it is started again, and the child never outlives its server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bench._hostile_cases import hostile_cases
from bench.serve.proc import live_children
from service.run_directory import PREFIX
from tests.e2e.server import ROOT, free_port, terminate, wait_ready
from tests.factories import digits

pytestmark = pytest.mark.e2e
TOKEN = "control-token"


@contextmanager
def serving(database_url: str, repository: Path, work: Path, *, workers: int = 1, flush_seconds: float = 5.0,
            temporary: Path | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``calibserve serve`` with its control process (the default). The 5 s shipping interval makes a label
    posted right after its prediction always overtake the prediction's shipping round."""
    port = free_port()
    env = {**os.environ, "CALIBSERVE_DATABASE_URL": database_url, "CALIBSERVE_MODEL_REPOSITORY": str(repository),
           "CALIBSERVE_SPOOL_DIR": str(work / "spool"), "CALIBSERVE_ADMIN_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1",
           "CALIBSERVE_LOG_FLUSH_SECONDS": str(flush_seconds)}
    if temporary is not None:
        env["TMPDIR"] = str(temporary)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the server makes its own
    log = (work / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", str(workers)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base, process, 90)
        except Exception as exc:
            raise RuntimeError(f"{exc}\n{(work / 'server.log').read_text()[-4000:]}") from None
        yield base, process
    finally:
        terminate(process, timeout=30)
        log.close()


def control_children(pid: int) -> list[int]:
    return live_children(pid, b"service.control_process")


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def predict(http: httpx.Client, rows: int) -> list[str]:
    x, _ = digits()
    r = http.post("/v1/models/digits/predict", json={"instances": x[:rows].tolist()})
    assert r.status_code == 200, r.text
    return [p["prediction_id"] for p in r.json()["predictions"]]


def feedback(http: httpx.Client, ids: list[str], label: int = 0) -> httpx.Response:
    return http.post("/v1/feedback", json={"items": [{"prediction_id": i, "label": label} for i in ids]})


def test_feedback_and_queries_go_to_the_child_which_is_restarted_when_it_dies(
        database_url: str, model_repository: Path, tmp_path: Path) -> None:
    with serving(database_url, model_repository, tmp_path) as (base, server), \
            httpx.Client(base_url=base, timeout=30) as http:
        (child,) = control_children(server.pid)
        ids = predict(http, 8)
        r = feedback(http, ids)  # the rows are still in the serving process's spool (5 s rounds)
        assert r.status_code == 200, r.text
        assert r.json()["counts"] == {"accepted": 8}
        assert feedback(http, ids).json()["counts"] == {"duplicate": 8}
        window = http.get("/v1/models/digits/versions/1/calibration", params={"window": "1h"})
        assert window.status_code == 200 and window.json()["labelled"] == 8, window.text
        assert http.get("/v1/models/digits/versions/1/calibrators").status_code == 200
        bad = http.post("/v1/feedback", content=b"{not json")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
        unknown = http.get("/v1/models/nope/versions/1/calibration")
        assert unknown.status_code == 404 and "error" in unknown.json()
        metrics = http.get("/metrics").text  # counted in the child, exported by the server's one endpoint
        assert 'calibserve_feedback_items_total{model="digits",outcome="accepted"} 8.0' in metrics

        os.kill(child, signal.SIGKILL)
        assert gone(child, 10)
        down = feedback(http, ids)
        assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1, down.text
        assert "control process" in down.json()["error"]
        assert len(predict(http, 2)) == 2  # predictions do not depend on the child

        deadline = time.monotonic() + 60
        while (again := feedback(http, ids)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert again.json()["counts"] == {"duplicate": 8}, again.text  # nothing lost, nothing doubled
        assert control_children(server.pid) not in ([], [child])


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_child_does_not_outlive_its_server(how: signal.Signals, database_url: str, model_repository: Path,
                                               tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="cs-") as name:  # TMPDIR: every run directory there is this test's
        temporary = Path(name)
        with serving(database_url, model_repository, tmp_path, temporary=temporary) as (_, server):
            (child,) = control_children(server.pid)
            (run_dir,) = temporary.glob(f"{PREFIX}*")
            server.send_signal(how)
            server.wait(timeout=30)
            assert gone(child, 30), f"the control process {child} outlived its server ({how.name})"
        # SIGTERM: the server removed its run directory; SIGKILL: the next server start does
        assert run_dir.exists() is (how == signal.SIGKILL)
        with serving(database_url, model_repository, tmp_path, temporary=temporary):
            (current,) = temporary.glob(f"{PREFIX}*")
            assert current != run_dir


def test_workers_share_one_control_process_and_one_metrics_endpoint(database_url: str, model_repository: Path,
                                                                     tmp_path: Path) -> None:
    with serving(database_url, model_repository, tmp_path, workers=2, flush_seconds=0.2) as (base, server):
        (child,) = control_children(server.pid)  # one, beside the workers, whatever their number
        ids: list[str] = []
        for _ in range(6):  # new connections: the kernel spreads them over both workers
            with httpx.Client(base_url=base, timeout=30) as http:
                ids += predict(http, 4)
        with httpx.Client(base_url=base, timeout=30) as http:
            # at once: a label whose prediction is still in the other worker's spool waits for its shipping round
            assert feedback(http, ids).json()["counts"] == {"accepted": 24}
            ready = http.get("/v2/health/ready").json()
            assert ready["control_process"] is True
            metrics = http.get("/metrics").text
            window = http.get("/v1/models/digits/versions/1/calibration", params={"window": "1h"}).json()
        assert 'calibserve_feedback_items_total{model="digits",outcome="accepted"} 24.0' in metrics
        assert window["labelled"] == 24 and window["predicted"] == 24
        assert control_children(server.pid) == [child]


def test_every_hostile_case_gets_its_4xx_through_the_control_process(database_url: str, model_repository: Path,
                                                                      tmp_path: Path) -> None:
    """bench/_hostile_cases.py against the server as shipped: the forwarded routes keep the error contract
    (a Unicode digit in a forwarded path once came back as a 500)."""
    with serving(database_url, model_repository, tmp_path) as (base, _), \
            httpx.Client(base_url=base, timeout=60) as http:
        pid = predict(http, 1)[0]
        wrong = []
        for case in hostile_cases(pid):
            headers = {**case.headers, **({"authorization": f"Bearer {TOKEN}"} if case.admin else {})}
            response = http.request(case.method, case.path, params=case.params, content=case.body, headers=headers)
            if response.status_code != case.expected or (response.status_code >= 400
                                                          and set(response.json()) != {"error"}):
                wrong.append((case.name, case.expected, response.status_code, response.text[:200]))
    assert wrong == []
