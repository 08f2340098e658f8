"""Shared by the fault programs (``crash``, ``outage``) and tests/e2e/test_crash.py: the real server as a
uvicorn subprocess that can be SIGKILLed and restarted on the same database and spool directory, fresh
databases, and what the database holds once the prediction log has caught up.

Black-box on purpose: everything is observed over HTTP on 127.0.0.1 or read back from the tables, so the
same programs measure today's in-memory writer and the durable spool that replaces it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from service.run_directory import PREFIX as RUN_PREFIX

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("CALIBSERVE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def commit_label(root: Path = ROOT) -> str:
    """The code being measured: the last commit that changed ``service/`` or ``migrations/`` (``+dirty`` with
    local changes there) and the checkout's HEAD, which may only add bench or docs commits on top."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout.strip()

    service = git("log", "-1", "--format=%h", "--", "service", "migrations") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "service", "migrations")
    return f"service {service}{'+dirty' if dirty else ''} (HEAD {git('rev-parse', '--short', 'HEAD')})"


def train_demo(repository: Path) -> Path:
    """The digits demo model (as ``bench.serving`` trains it); imports torch in THIS process only."""
    from service.training.pipeline import train_and_export

    return train_and_export(dataset="digits", loss="flsd53", name="digits", version=1, repository=repository,
                            calibrator="temperature", curvature=False, progress=False)


def upgrade(url: str, root: Path = ROOT) -> None:
    """Migrate with the measured checkout's own migrations (it may be another tree than this one)."""
    subprocess.run([sys.executable, "-c", "import sys; from service.db.migrate import upgrade; upgrade(sys.argv[1])",
                    url], cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, check=True)


@contextmanager
def fresh_database(kind: str, directory: Path, root: Path = ROOT) -> Iterator[str]:
    """A migrated empty database: a SQLite file in ``directory``, or a new PostgreSQL database dropped after."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'calibserve.db'}"
        upgrade(url, root)
        yield url
        return
    name = f"calibserve_faults_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        upgrade(url, root)
        yield url
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(statement: str) -> None:
    """One statement on a fresh connection (a pooled one would not survive the outage program's restart)."""
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


@dataclass
class Stored:
    """What the database holds: prediction ids, labels per prediction id, and the statistics sums."""

    prediction_ids: set[str]
    labels: dict[str, int]
    calibration_totals: float  # Σ calibration_totals.count: must equal len(labels)
    prediction_counts: float  # Σ prediction_counts.count: must equal len(prediction_ids)


def read_stored(url: str) -> Stored:
    from service.db.tables import CalibrationTotals, Feedback, Prediction, PredictionCount

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ids = set(conn.scalars(select(Prediction.id)))
            labels = {p: int(v) for p, v in conn.execute(select(Feedback.prediction_id, Feedback.label))}
            totals = conn.scalar(select(func.coalesce(func.sum(CalibrationTotals.count), 0.0)))
            counts = conn.scalar(select(func.coalesce(func.sum(PredictionCount.count), 0.0)))
    finally:
        engine.dispose()
    return Stored(ids, labels, float(totals or 0.0), float(counts or 0.0))


def count_predictions(url: str) -> int:
    from service.db.tables import Prediction

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Prediction)) or 0)
    finally:
        engine.dispose()


def log_backlog(body: dict[str, Any]) -> int:
    """Rows not yet in the database according to readiness: every ``*depth`` field of ``prediction_log``
    (today's ``queue_depth``; a spool may add its own depth next to it)."""
    log = body.get("prediction_log") or {}
    return sum(int(v) for k, v in log.items() if k.endswith("depth") and isinstance(v, int | float))


class Server:
    """The server as shipped (``python -m service serve``: migrations, then the serving process and its control
    process) or, with ``shipped=False``, the bare app (``python -m uvicorn --factory service.app:create_app``),
    on a fixed port, working directory and spool directory, so a process started after a SIGKILL finds what the
    killed one left on disk. ``kill`` SIGKILLs the serving process alone: its control process, if any, sees
    its stdin close and stops by itself, as after a real crash of that process."""

    def __init__(self, *, database_url: str, repository: Path, work: Path, env: dict[str, str] | None = None,
                 port: int | None = None, root: Path = ROOT, shipped: bool = True) -> None:
        self.shipped = shipped
        self.work = work
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "server.log"
        (work / "spool").mkdir(parents=True, exist_ok=True)
        # the server's own TMPDIR, so every run directory there is one of its; short (not under ``work``): the
        # control socket inside must fit a Unix socket's path. Removed with this object.
        self._temporary = tempfile.TemporaryDirectory(prefix="cs-")
        self.temporary = Path(self._temporary.name)
        self.environ = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1",
                        "CALIBSERVE_DATABASE_URL": database_url, "CALIBSERVE_MODEL_REPOSITORY": str(repository),
                        "CALIBSERVE_SPOOL_DIR": str(work / "spool"), "TMPDIR": str(self.temporary),
                        **{f"CALIBSERVE_{k.upper()}": v for k, v in (env or {}).items()}}
        self.process: subprocess.Popen[bytes] | None = None
        self.generation = 0  # incremented at every start: which process answered a request

    def start(self, timeout: float = 90.0) -> float:
        """Start the process and wait until ``/v2/health/ready`` answers 200; returns the seconds it took."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.generation + 1} ---\n".encode())
            log.flush()
            command = (["-m", "service", "serve"] if self.shipped else
                       ["-m", "uvicorn", "--factory", "service.app:create_app", "--log-level", "warning"])
            self.process = subprocess.Popen([sys.executable, *command, "--host", "127.0.0.1", "--port", str(self.port)],
                                            cwd=self.work, env=self.environ, stdout=log, stderr=subprocess.STDOUT)
        self.generation += 1
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/v2/health/ready", timeout=2.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready within {timeout} s\n{self.log_tail()}")

    def run_directories(self) -> int:
        """How many run directories (service/run_directory.py) are in the server's TMPDIR."""
        return sum(1 for _ in self.temporary.glob(f"{RUN_PREFIX}*"))

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no flush; whatever only lived in memory is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM (graceful: the lifespan writes what is queued), SIGKILL after 20 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def readiness(self) -> tuple[int, dict[str, Any]]:
        r = httpx.get(f"{self.base_url}/v2/health/ready", timeout=5.0)
        try:
            body = r.json()
        except ValueError:
            body = {"text": r.text[:200]}
        return r.status_code, body if isinstance(body, dict) else {"body": body}

    def wait_drained(self, rows: Callable[[], int], timeout: float = 60.0) -> float:
        """Seconds until readiness reports an empty log backlog and the stored row count holds still for
        1 s (a shipper that has not yet picked up a spool must not pass as drained); TimeoutError if never."""
        started = time.monotonic()
        last = -1
        while time.monotonic() - started < timeout:
            try:
                _, body = self.readiness()
                backlog = log_backlog(body)
            except httpx.TransportError:
                backlog = -1
            now = rows() if backlog == 0 else -1
            if backlog == 0 and now == last:
                return max(0.0, time.monotonic() - started - 1.0)
            last = now
            time.sleep(1.0)
        raise TimeoutError(f"prediction log not drained within {timeout} s")

    def drain_or_nan(self, rows: Callable[[], int], timeout: float) -> float:
        """For the programs: a log that never drains is reported (NaN, and rows still missing), not a crash."""
        try:
            return self.wait_drained(rows, timeout)
        except TimeoutError as exc:
            print(f"WARNING: {exc}; counting anyway (the backlog shows up as lost rows)", flush=True)
            return float("nan")

    def log_tail(self, n: int = 3000) -> str:
        return "--- server log ---\n" + self.log_path.read_text(errors="replace")[-n:]


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured table (numbers right-aligned), so a run's output can be pasted into the docs."""
    def cell(v: object) -> str:
        return f"{v:,}" if isinstance(v, int) else f"{v:.2f}" if isinstance(v, float) else str(v)

    numeric = [all(isinstance(r[i], int | float) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def repository_or_train(repository: Path | None, work: Path) -> Path:
    if repository is not None:
        return repository
    print("training the digits demo model (pass --repository DIR to reuse one) …", flush=True)
    train_demo(work / "models")
    return work / "models"
