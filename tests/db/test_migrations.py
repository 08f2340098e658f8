"""Alembic: upgrade → downgrade → upgrade on both databases, and the schema matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.db.engine import make_engine
from service.db.migrate import downgrade, upgrade
from service.db.tables import Base


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    engine = make_engine(database_url)
    assert "predictions" in inspect(engine).get_table_names()
    downgrade(database_url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    assert {"predictions", "feedback", "calibrators", "calibration_stats"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
