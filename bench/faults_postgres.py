"""Stop the machine's shared PostgreSQL cluster (15/main) for the outage program, and ALWAYS start it again.

Every way out restarts it: the block ending or raising, SIGINT/SIGTERM/SIGHUP (turned into exceptions so
the ``finally`` runs), interpreter exit (``atexit``), and, should this process itself be SIGKILLed, a
detached watchdog shell that starts the cluster ``max_seconds + 30`` s after the stop.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sqlalchemy import create_engine, text

from bench.faults_common import PG_ADMIN

VERSION, CLUSTER = "15", "main"
CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", VERSION, CLUSTER]
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def cluster_status() -> str:
    """``online``, ``down`` or ``missing``, from ``pg_lsclusters``."""
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == [VERSION, CLUSTER] and len(parts) >= 4:
            return parts[3]
    return "missing"


def _accepts_connections() -> bool:
    engine = create_engine(PG_ADMIN, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # not up yet: the caller polls
        return False
    finally:
        engine.dispose()


def start_cluster(timeout: float = 60.0) -> float:
    """Start the cluster if it is not online; seconds until it accepts connections."""
    started = time.monotonic()
    if cluster_status() != "online":
        subprocess.run([*CTL, "start"], check=False)
    while time.monotonic() - started < timeout:
        if cluster_status() == "online" and _accepts_connections():
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL {VERSION}/{CLUSTER} did not come back within {timeout} s: "
                       f"run `{shlex.join([*CTL, 'start'])}` now")


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def postgres_stopped(max_seconds: float) -> Iterator[None]:
    """PostgreSQL is down inside the block (stopped with ``-m fast``) and online again when it is left."""
    watchdog = subprocess.Popen(
        ["sh", "-c", f"sleep {int(max_seconds) + 30}; exec {shlex.join([*CTL, 'start'])}"],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(start_cluster)
    previous = {sig: signal.signal(sig, _raise_exit) for sig in SIGNALS}
    try:
        subprocess.run([*CTL, "stop", "-m", "fast"], check=True)
        yield
    finally:
        for sig in SIGNALS:  # a second Ctrl-C must not interrupt the restart
            signal.signal(sig, signal.SIG_IGN)
        try:
            start_cluster()
        except Exception:  # leave the watchdog and the atexit hook armed: they try again
            print(f"PostgreSQL did not come back; the watchdog retries in {int(max_seconds) + 30} s", flush=True)
            raise
        else:
            os.killpg(watchdog.pid, signal.SIGKILL)  # the watchdog's own session, started above
            watchdog.wait()
            atexit.unregister(start_cluster)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
