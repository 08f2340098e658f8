"""The prediction log shipped by a child process (the server's default), on the real databases: rows arrive,
a killed child is replaced without losing a row, an outage keeps the spool, a refused block is isolated, and
a child never outlives a SIGKILLed server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import create_engine, select

from service.db.engine import make_engine
from service.db.migrate import upgrade
from service.db.ship_process import ShipProcess
from service.db.tables import Prediction
from service.db.writer import PredictionWriter
from tests.conftest import PG_URL, drop_postgres_database, fresh_postgres_database
from tests.db.test_writer import ROOT, block, stored


def ship_writer(url: str, spool: Path) -> PredictionWriter:
    return PredictionWriter(make_engine(url), spool_dir=spool, flush_seconds=0.01, ship_process=True,
                            connect_timeout=1)


def shipping(url: str, spool: Path) -> tuple[PredictionWriter, ShipProcess, int]:
    """A started writer whose child has shipped one block: (writer, its ShipProcess, the child's pid)."""
    writer = ship_writer(url, spool)
    writer.start()
    writer.submit(block(1))
    assert writer.flush(timeout=30)
    inserter = writer.inserter
    assert isinstance(inserter, ShipProcess) and inserter.pid is not None
    return writer, inserter, inserter.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_rows_ship_through_the_child_process(database_url: str, tmp_path: Path) -> None:
    writer = ship_writer(database_url, tmp_path)
    writer.start()
    blocks = [block(3) for _ in range(20)]
    for b in blocks:
        writer.submit(b)
    assert writer.flush(timeout=30)
    inserter = writer.inserter
    assert isinstance(inserter, ShipProcess) and inserter.started == 1
    child = inserter.pid
    assert child is not None and child != os.getpid() and alive(child)
    writer.stop()
    assert stored(database_url) == (60, 60.0) and writer.written == 60 and writer.depth() == 0
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:  # stop closed its stdin: it exits
        time.sleep(0.05)
    assert not alive(child)


def test_a_killed_child_is_replaced_and_nothing_is_lost(database_url: str, tmp_path: Path) -> None:
    writer, inserter, child = shipping(database_url, tmp_path)
    os.kill(child, signal.SIGKILL)
    for _ in range(10):
        writer.submit(block(2))
    assert writer.flush(timeout=30)  # the next batch met a dead child: an outage, then a new child
    assert inserter.started == 2 and inserter.pid != child
    writer.stop()
    assert stored(database_url) == (21, 21.0) and writer.dropped == 0


def test_the_child_ignores_sigterm_and_sigint(database_url: str, tmp_path: Path) -> None:
    """Ctrl-C or a ``killpg`` reaches the whole group; the parent's graceful stop still ships through it."""
    writer, inserter, child = shipping(database_url, tmp_path)
    os.kill(child, signal.SIGTERM)
    os.kill(child, signal.SIGINT)
    writer.submit(block(5))
    assert writer.flush(timeout=30)
    assert inserter.started == 1
    writer.stop()
    assert stored(database_url) == (6, 6.0)


def test_an_outage_keeps_the_spool_and_the_child_ships_once_the_database_is_back(tmp_path: Path,
                                                                                  postgres_available: bool) -> None:
    url, name = fresh_postgres_database()
    drop_postgres_database(name)  # the server answers, the database is not there: an outage to the shipper
    writer = ship_writer(url, tmp_path)
    writer.start()
    try:
        for _ in range(5):
            writer.submit(block(2))
        deadline = time.monotonic() + 20
        while writer.database_ok and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not writer.database_ok and writer.depth() == 10 and writer.dropped == 0
        staged, staged_name = fresh_postgres_database()  # the database comes back whole, schema and all
        upgrade(staged)
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{staged_name}" RENAME TO "{name}"')
        admin.dispose()
        assert writer.flush(timeout=60)
        assert writer.database_ok and writer.depth() == 0
        writer.stop()
        assert stored(url) == (10, 10.0)
    finally:
        writer.stop()
        drop_postgres_database(name)


ORPHANED = textwrap.dedent("""
    import sys
    from pathlib import Path
    from service.db.engine import make_engine
    from service.db.writer import PredictionWriter
    from tests.db.test_writer import block
    writer = PredictionWriter(make_engine(sys.argv[1]), spool_dir=Path(sys.argv[2]), flush_seconds=0.01,
                              ship_process=True)
    writer.start()
    writer.submit(block(3))
    assert writer.flush(timeout=30)
    print(writer.inserter.pid, flush=True)
    import time; time.sleep(120)
""")


def test_the_child_exits_when_the_server_is_sigkilled(database_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", ORPHANED, database_url, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    child = int(proc.stdout.readline().decode())
    assert alive(child)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:  # its stdin closed with the parent
        time.sleep(0.05)
    assert not alive(child)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert len(conn.execute(select(Prediction.id)).scalars().all()) == 3
    engine.dispose()
