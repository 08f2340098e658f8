"""The control process: a second calibserve app on a Unix socket, which answers the feedback and calibration
queries that the serving process forwards (``api/control_proxy.py``), so their database work and CPU run on an
interpreter that predict traffic does not hold (``calibserve serve --control-process``).

Parent side, ``ControlProcess``: started by ``calibserve serve`` before the serving server, and started again
(with backoff) if it dies; meanwhile the forwarded routes answer 503 + ``Retry-After``. The child runs the
same settings with its own spool directory (it serves no predictions), no ship process and no per-client
cap (its one client is the serving process), and it refreshes the monitoring gauges in place of the serving
process. The child is in a session of its own, so a terminal's Ctrl-C stops the serving process first (whose
graceful stop still forwards in-flight labels); it exits when its stdin closes: at the parent's stop, or
when a SIGKILLed parent leaves the pipe without a writer.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from service.db.child_stop import close_and_wait

log = logging.getLogger(__name__)

SOCKET_ENV = "CALIBSERVE_CONTROL_CHILD_SOCKET"
RESTART_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0)


class ControlProcess:
    def __init__(self, env: dict[str, str], socket_path: Path) -> None:
        self.env = {**env, SOCKET_ENV: str(socket_path)}
        self.socket_path = socket_path
        self.started = 0  # children started so far (a restart shows here)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="control-supervisor", daemon=True)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, ready_timeout: float = 120.0) -> None:
        """Start the child and wait until its socket accepts connections."""
        self._spawn()
        deadline = time.monotonic() + ready_timeout
        while not self.accepts():
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"the control process exited with code {self._proc.returncode} at start")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the control process did not listen on {self.socket_path} "
                                   f"within {ready_timeout:g} s")
            time.sleep(0.05)
        self._supervisor.start()

    def accepts(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Close the child's stdin: it stops gracefully (queued labels are committed first); kill it if not."""
        self._stopping.set()
        if self._proc is not None:
            close_and_wait(self._proc, timeout)

    def _spawn(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        self._proc = subprocess.Popen([sys.executable, "-m", "service.control_process"], stdin=subprocess.PIPE,
                                      env=self.env, start_new_session=True)
        self.started += 1

    def _supervise(self) -> None:
        failures = 0
        while True:
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            if self._stopping.is_set():
                return
            pause = RESTART_BACKOFF_SECONDS[min(failures, len(RESTART_BACKOFF_SECONDS) - 1)]
            log.error("the control process exited (code %s); starting a new one in %.1f s", code, pause)
            if self._stopping.wait(pause):
                return
            self._spawn()
            failures += 1


def child_environment(env: dict[str, str], spool_dir: Path) -> dict[str, str]:
    """What the child changes in the serving settings (passed by environment, like uvicorn workers')."""
    child = {k: v for k, v in env.items() if k != "CALIBSERVE_CONTROL_SOCKET"}  # it forwards nothing itself
    return {**child, "CALIBSERVE_SPOOL_DIR": str(spool_dir / "control"), "CALIBSERVE_SHIP_PROCESS": "false",
            "CALIBSERVE_MAX_CONCURRENT_PER_CLIENT": "0", "CALIBSERVE_CONTROL_PROCESS": "false"}


def _exit_with_parent() -> None:
    """EOF on stdin: the parent stopped or died. SIGTERM ourselves, which uvicorn handles as a graceful stop."""
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    settings = Settings()
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    # keep-alive for as long as the serving process pools the connection; access log off (the parent's has it)
    uvicorn.run(create_app(settings), uds=os.environ[SOCKET_ENV], timeout_keep_alive=3600, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
