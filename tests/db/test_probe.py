"""service/db/probe.py: a reachable database probes True, a closed port False with the reason, and a result
is reused for ``interval`` seconds (one SELECT 1 per interval, however often readiness is polled)."""

from __future__ import annotations

import time

from sqlalchemy import event

from service.db.engine import make_engine
from service.db.probe import DatabaseProbe


def test_a_reachable_database_probes_true_and_is_cached(database_url: str) -> None:
    engine = make_engine(database_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    probe = DatabaseProbe(engine, interval=0.3)
    first = probe.check()
    assert first.reachable and first.error is None
    assert all(probe.check() is first for _ in range(50))
    assert statements.count("SELECT 1") == 1
    time.sleep(0.35)
    assert probe.check() is not first and statements.count("SELECT 1") == 2
    engine.dispose()


def test_a_closed_port_probes_false_with_the_reason() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/nothing", connect_timeout=1)
    result = DatabaseProbe(engine, interval=10).check()
    assert not result.reachable and result.error is not None and result.error.startswith("OperationalError")
    assert result.describe()["reachable"] is False
    engine.dispose()
