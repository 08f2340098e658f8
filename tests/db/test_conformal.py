"""Conformal calibrator rows: versions, one active per probability calibrator (enforced by the database), the
fitted calibrator round-trips through the JSON column, and migration 0003 downgrades and upgrades alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from service.calibration.conformal import SplitConformal, conformal_from_dict
from service.db import audit
from service.db import conformal as rows
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import downgrade, upgrade
from service.db.tables import ConformalCalibrator

NEW_TABLES = {"conformal_calibrators", "cost_matrices", "conformal_stats", "decision_stats", "prediction_decisions"}


def fitted_params(seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3), size=60)
    return SplitConformal(score="aps", mondrian=True, seed=seed).fit(p, rng.integers(0, 3, 60)).to_dict()["params"]


def test_versions_activation_and_round_trip(database_url: str) -> None:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        first = rows.insert_conformal(session=session, model="m", version=1, calibrator_version=1,
                                      params=fitted_params(0), source="card", created_by="training", n_fit=60)
        assert rows.activate_conformal(session=session, row=first) is None
        second = rows.insert_conformal(session=session, model="m", version=1, calibrator_version=1,
                                       params=fitted_params(1), source="refit", created_by="admin", n_fit=60)
        other_cal = rows.insert_conformal(session=session, model="m", version=1, calibrator_version=2,
                                          params=fitted_params(2), source="refit", created_by="admin", n_fit=60)
        previous = rows.activate_conformal(session=session, row=second)
        rows.activate_conformal(session=session, row=other_cal)
        audit.record(session=session, actor="admin", action="conformal.activate", model="m", version=1,
                     detail={"conformal_version": second.conformal_version})
        session.commit()
        assert previous is not None and previous.conformal_version == 1 and previous.state == "retired"
        assert [r.conformal_version for r in rows.list_conformal(session=session, model="m", version=1)] == [1, 2, 3]
        assert rows.active_conformal_versions(session=session) == {("m", 1, 1): 2, ("m", 1, 2): 3}
        assert audit.recent(session=session)[0].action == "conformal.activate"

    with make_sessionmaker(engine)() as session:  # a fresh session reads the stored JSON back
        stored = rows.get_active_conformal(session=session, model="m", version=1, calibrator_version=1)
        assert stored is not None and stored.score == "aps" and stored.mondrian is True
        again = conformal_from_dict({"method": "split_conformal", "params": json.loads(json.dumps(stored.params))})
        probe = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
        expected = conformal_from_dict({"method": "split_conformal", "params": fitted_params(1)})
        assert np.array_equal(again.predict_set(probe, 0.9), expected.predict_set(probe, 0.9))
        assert rows.get_conformal(session=session, model="m", version=1, conformal_version=9) is None
    engine.dispose()


def test_two_active_rows_for_one_calibrator_are_refused(database_url: str) -> None:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        for cv in (1, 2):
            session.add(ConformalCalibrator(
                model="m", version=1, calibrator_version=1, conformal_version=cv, score="lac", mondrian=False,
                params={}, state="active", source="test", n_fit=1, created_at=datetime.now(UTC), created_by="t"))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()


def test_migration_0003_downgrades_and_upgrades_alone(database_url: str) -> None:
    engine = make_engine(database_url)
    assert NEW_TABLES <= set(inspect(engine).get_table_names())
    downgrade(database_url, "0002")
    names = set(inspect(engine).get_table_names())
    assert not NEW_TABLES & names and "prediction_confidence_stats" in names
    upgrade(database_url, "0003")
    assert NEW_TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()
