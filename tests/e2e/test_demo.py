"""``calibserve demo`` serves from a process that never loads torch: training runs in a child process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ROOT, free_port

pytestmark = pytest.mark.e2e


def test_demo_server_process_has_no_torch(trained_repository: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(trained_repository, repo)  # the demo reuses a trained model (no --retrain)
    port = free_port()
    env = {**os.environ, "CALIBSERVE_MODEL_REPOSITORY": str(repo), "CALIBSERVE_PORT": str(port),
           "CALIBSERVE_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "CALIBSERVE_SPOOL_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "service", "demo"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("the demo server did not become ready")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libtorch" not in maps and "sklearn" not in maps
        body = {"instances": [[0.0] * 64]}
        assert httpx.post(f"http://127.0.0.1:{port}/v1/models/digits/predict", json=body).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert b"curl -s http://127.0.0.1" in out  # the printed examples, with a real digit row
