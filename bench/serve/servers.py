"""Start, watch and stop the servers under test; each in its own process group, killed by its own pgid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class Server:
    name: str
    argv: list[str]
    ready_path: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    calibserve: bool = False  # has a prediction log whose backlog we wait for
    proc: subprocess.Popen[bytes] | None = None
    ready_seconds: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def free_port() -> int:
    """A port nobody listens on now (other engineers run servers on this machine too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(server: Server, log: Path, timeout: float = 90.0) -> None:
    """Start ``server`` and wait for a 200 on its ready path; ``ready_seconds`` counts from ``Popen``."""
    started = time.perf_counter()
    server.proc = subprocess.Popen(server.argv, env={**os.environ, **server.env}, cwd=server.cwd,
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    while time.perf_counter() - started < timeout:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(server.base + server.ready_path, timeout=1).status_code == 200:
                server.ready_seconds = time.perf_counter() - started
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    stop(server)
    raise TimeoutError(f"{server.name} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(server: Server) -> None:
    """SIGTERM the server's own process group (its workers and pool with it), SIGKILL after 20 s."""
    if server.proc is None or server.proc.poll() is not None:
        return
    pgid = server.proc.pid  # start_new_session: the group id is the pid we started
    os.killpg(pgid, signal.SIGTERM)
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        server.proc.wait(timeout=10)


def backlog(server: Server) -> int:
    """Prediction rows (requests) the server has answered but not yet stored; 0 for servers without a log.

    Reads ``/v2/health/ready`` → ``prediction_log``: every integer field named like a queue or spool depth
    counts, so a spool that reports ``spool_rows`` or ``pending`` next to ``queue_depth`` is waited for too."""
    if not server.calibserve:
        return 0
    log = httpx.get(server.base + "/v2/health/ready", timeout=10).json().get("prediction_log", {})
    return sum(v for k, v in log.items() if isinstance(v, int) and not isinstance(v, bool)
               and any(w in k for w in ("queue_depth", "pending", "spool_rows", "backlog", "unshipped")))


def drain(server: Server, timeout: float = 120.0) -> float:
    """Wait until the server's log has caught up; returns the seconds it took."""
    started = time.monotonic()
    while backlog(server) and time.monotonic() - started < timeout:
        time.sleep(0.1)
    return time.monotonic() - started
