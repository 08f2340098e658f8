"""Start the real server (uvicorn in a subprocess) on a free 127.0.0.1 port for end-to-end tests.

    with running_server(database_url, model_repository, ADMIN_TOKEN="t") as base_url:
        httpx.get(f"{base_url}/v2/health/ready")

Extra keyword arguments become ``CALIBSERVE_<NAME>`` environment variables. The process is terminated
(SIGTERM, so the lifespan's graceful shutdown runs) when the block ends; its output is kept in a log
file whose tail is shown if it never becomes ready.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``/v2/health/ready`` until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{base_url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server at {base_url} was not ready within {timeout} s")


@contextmanager
def running_server(database_url: str, model_repository: Path, *, timeout: float = 30.0,
                   **env: object) -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:<port>``) of a server serving ``model_repository``."""
    port = free_port()
    environ = {**os.environ, "CALIBSERVE_DATABASE_URL": database_url,
               "CALIBSERVE_MODEL_REPOSITORY": str(model_repository), "PYTHONUNBUFFERED": "1"}
    # the spool is keyed by database inside this directory; a test that restarts a server passes its own
    environ.setdefault("CALIBSERVE_SPOOL_DIR", str(Path(tempfile.gettempdir()) / "calibserve-e2e-spool"))
    environ.update({f"CALIBSERVE_{k.upper()}": str(v) for k, v in env.items()})
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile(prefix="calibserve-e2e-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_ready(base_url, process, timeout)
        except Exception as exc:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{exc}\n--- server log ---\n{tail}") from None
        yield base_url
    finally:
        terminate(process, timeout=15)
        log_path.unlink(missing_ok=True)


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (the lifespan's graceful shutdown runs), SIGKILL after ``timeout`` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
