"""The database itself enforces one active calibrator per model version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from service.db import calibrators as rows
from service.db.engine import make_engine, make_sessionmaker
from service.db.tables import Calibrator


def test_two_active_rows_are_refused(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        for cv in (1, 2):
            session.add(Calibrator(model="m", version=1, calibrator_version=cv, method="identity", params={},
                                   state="active", source="test", created_at=datetime.now(UTC), created_by="t"))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()


def test_activation_retires_the_previous_one(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        first = rows.insert_calibrator(session=session, model="m", version=1, method="identity", params={},
                                       source="test", created_by="t")
        rows.activate_calibrator(session=session, row=first)
        second = rows.insert_calibrator(session=session, model="m", version=1, method="temperature",
                                        params={"temperature": 2.0}, source="test", created_by="t")
        previous = rows.activate_calibrator(session=session, row=second)
        session.commit()
        assert previous is not None and previous.calibrator_version == 1
        assert second.previous_active == 1
        assert rows.active_versions(session=session) == {("m", 1): 2}
        assert [c.state for c in rows.list_calibrators(session=session, model="m", version=1)] == ["retired",
                                                                                                  "active"]
    engine.dispose()
