"""Cost matrices: every change is a new version, one active per model (the database enforces it), rollback
re-activates an earlier version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from service.db import costs
from service.db.engine import make_engine, make_sessionmaker
from service.db.tables import CostMatrix


def test_set_list_and_roll_back(database_url: str) -> None:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        first, replaced = costs.set_cost_matrix(session=session, model="m", matrix=[[0, 10], [1, 0]],
                                                actions=["approve", "reject"], n_classes=2, created_by="admin")
        assert replaced is None and first.cost_matrix_version == 1
        second, replaced = costs.set_cost_matrix(session=session, model="m", matrix=[[0, 5], [1, 0], [0.5, 0.5]],
                                                 actions=["approve", "reject", "review"], n_classes=2,
                                                 created_by="admin")
        costs.set_cost_matrix(session=session, model="other", matrix=[[0.0]], actions=["only"], n_classes=1,
                              created_by="admin")
        session.commit()
        assert replaced is not None and replaced.cost_matrix_version == 1 and replaced.state == "retired"
        assert costs.active_cost_matrix_versions(session=session) == {"m": 2, "other": 1}
        old = costs.get_cost_matrix(session=session, model="m", cost_matrix_version=1)
        assert old is not None
        costs.activate_cost_matrix(session=session, row=old)
        session.commit()

    with make_sessionmaker(engine)() as session:
        active = costs.get_active_cost_matrix(session=session, model="m")
        assert active is not None and active.cost_matrix_version == 1 and active.matrix == [[0, 10], [1, 0]]
        assert active.actions == ["approve", "reject"]
        assert [r.state for r in costs.list_cost_matrices(session=session, model="m")] == ["active", "retired"]
    engine.dispose()


def test_two_active_matrices_are_refused(database_url: str) -> None:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        for v in (1, 2):
            session.add(CostMatrix(model="m", cost_matrix_version=v, matrix=[[0]], actions=["a"], n_classes=1,
                                   state="active", created_at=datetime.now(UTC), created_by="t"))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()
