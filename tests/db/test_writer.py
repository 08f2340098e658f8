"""The prediction log on the real databases: spooled before the response, shipped idempotently, kept
through outages and SIGKILL, refused (never dropped) past its disk bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import uuid_utils
from sqlalchemy import func, select

from service.db.engine import make_engine
from service.db.inserters import EngineInserter
from service.db.prediction_block import PredictionBlock, decode, encode
from service.db.tables import Prediction, PredictionCount
from service.db.writer import PredictionWriter, SpoolFull, insert_blocks
from tests.conftest import migrated_database

ROOT = Path(__file__).resolve().parents[2]


def block(n: int = 3, *, version: int = 1, model: str = "digits") -> PredictionBlock:
    rng = np.random.default_rng(n)
    p = rng.dirichlet(np.ones(4), size=n).astype("<f4")
    return PredictionBlock(model, version, 1, datetime.now(UTC), [str(uuid_utils.uuid7()) for _ in range(n)],
                           np.log(p), p, p.max(axis=1).astype(np.float64), p.argmax(axis=1), {"src": "test"})


def stored(url: str) -> tuple[int, float]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(Prediction)).scalar_one()
        counted = conn.execute(select(func.coalesce(func.sum(PredictionCount.count), 0))).scalar_one()
    engine.dispose()
    return int(rows), float(counted)


def test_encode_decode_round_trip() -> None:
    b = block(5)
    back = decode(encode(b))
    assert back.ids == b.ids and back.tags == b.tags and back.created_at == b.created_at
    for name in ("logits", "probabilities", "confidence", "class_index"):
        np.testing.assert_array_equal(getattr(back, name), getattr(b, name))


def test_reshipping_is_idempotent(database_url: str) -> None:
    """A crash between the database commit and the spool delete ships a block twice: stored and counted once."""
    engine = make_engine(database_url)
    blocks = [block(3), block(4)]
    assert insert_blocks(engine, blocks, 60) == 7
    assert insert_blocks(engine, [*blocks, block(2)], 60) == 2  # only the new block's rows
    engine.dispose()
    assert stored(database_url) == (9, 9.0)


def test_rows_survive_an_outage_and_ship_after_it(database_url: str, tmp_path: Path) -> None:
    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    writer = PredictionWriter(down, spool_dir=tmp_path, flush_seconds=0.01)
    writer.start()
    for _ in range(5):
        writer.submit(block(2))
    deadline = time.monotonic() + 10
    while writer.database_ok and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not writer.database_ok and writer.depth() == 10  # kept in the spool, nothing dropped
    writer.inserter = EngineInserter(make_engine(database_url), 60)  # the database is back
    assert writer.flush(timeout=20)
    writer.stop()
    assert stored(database_url) == (10, 10.0) and writer.dropped == 0 and writer.depth() == 0


def test_past_the_disk_bound_predictions_are_refused_not_dropped(database_url: str, tmp_path: Path) -> None:
    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    writer = PredictionWriter(down, spool_dir=tmp_path, max_spool_bytes=4096, flush_seconds=0.01)
    writer.start()
    accepted = 0
    with pytest.raises(SpoolFull):
        for _ in range(100):
            writer.submit(block(3))
            accepted += 3
    assert writer.refused == 3 and writer.depth() == accepted and writer.saturated()
    writer.inserter = EngineInserter(make_engine(database_url), 60)
    assert writer.flush(timeout=20)
    writer.stop()
    assert stored(database_url)[0] == accepted


KILLED = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from service.db.engine import make_engine
    from service.db.writer import PredictionWriter
    from tests.db.test_writer import block
    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    writer = PredictionWriter(down, spool_dir=Path(sys.argv[1]), flush_seconds=0.01)
    writer.start()
    ids = []
    for _ in range(20):
        b = block(4)
        writer.submit(b)  # durable on return: the id may now leave the process
        ids += b.ids
    print(",".join(ids), flush=True)
    time.sleep(60)
""")


def test_spooled_rows_survive_sigkill_and_the_next_process_ships_them(database_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    ids = proc.stdout.readline().decode().strip().split(",")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(ids) == 80
    writer = PredictionWriter(make_engine(database_url), spool_dir=tmp_path, flush_seconds=0.01)
    writer.start()  # adopts the dead process's spool file
    assert writer.depth() == 80
    assert writer.flush(timeout=20)
    writer.stop()
    engine = make_engine(database_url)
    with engine.connect() as conn:
        found = set(conn.execute(select(Prediction.id)).scalars())
    engine.dispose()
    assert found == set(ids)
    assert list(tmp_path.glob("spool-*.db")) == []  # drained files are removed


@pytest.mark.parametrize("ship_process", [False, True], ids=["in-process", "ship-process"])
def test_a_block_the_database_refuses_for_good_is_kept_and_counted(tmp_path: Path, postgres_available: bool,
                                                                   ship_process: bool) -> None:
    """PostgreSQL refuses a version beyond INTEGER: that block goes to the dead table; the others ship (the
    refusal is isolated the same way when the ship process reports it)."""
    with migrated_database("postgresql", tmp_path) as url:
        writer = PredictionWriter(make_engine(url), spool_dir=tmp_path / "spool", flush_seconds=0.01,
                                  ship_process=ship_process)
        writer.start()
        writer.submit(block(2))
        writer.submit(block(3, version=2**40))
        writer.submit(block(4))
        assert writer.flush(timeout=20)
        writer.stop()
        assert stored(url)[0] == 6 and writer.dropped == 3 and writer.depth() == 0
        restarted = PredictionWriter(make_engine(url), spool_dir=tmp_path / "spool")
        restarted.start()  # the loss stays counted across restarts (the dead rows are on disk)
        assert restarted.dropped == 3
        restarted.stop()


def test_a_sibling_that_dies_while_we_run_is_adopted(database_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from service.db import writer as writer_module
    from service.db.spool import create_own

    monkeypatch.setattr(writer_module, "ORPHAN_SCAN_SECONDS", 0.05)
    writer = PredictionWriter(make_engine(database_url), spool_dir=tmp_path, flush_seconds=0.01)
    writer.start()
    sibling = create_own(tmp_path)  # another worker on the same spool directory…
    b = block(5)
    sibling.append(encode(b), 5)
    sibling._lock_file.close()  # …killed: its lock is free
    deadline = time.monotonic() + 20
    while stored(database_url)[0] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.stop()
    assert stored(database_url) == (5, 5.0)


def test_may_hold_is_true_exactly_for_rows_made_after_the_last_completed_round(database_url: str,
                                                                                 tmp_path: Path) -> None:
    writer = PredictionWriter(make_engine(database_url), spool_dir=tmp_path, flush_seconds=5.0)
    writer.start()
    try:
        early = block(2)
        writer.submit(early)
        made = int(early.ids[0][:8] + early.ids[0][9:13], 16) / 1000
        assert writer.may_hold(made)  # nothing shipped yet
        assert writer.flush(timeout=20)
        assert not writer.may_hold(made - 0.2)  # shipped: older than the round that shipped it, with margin
        late = block(3)
        writer.submit(late)
        assert writer.may_hold(int(late.ids[0][:8] + late.ids[0][9:13], 16) / 1000)
    finally:
        writer.stop()
