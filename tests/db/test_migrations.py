"""Alembic: upgrade → downgrade → upgrade on both databases, and the schema matches the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

import service
from service.db.engine import make_engine
from service.db.migrate import alembic_config, downgrade, upgrade
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


def test_migrations_ship_inside_the_package_with_a_linear_history() -> None:
    # a package resource (service:migrations), so a wheel install finds them; one head, no branches
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert Path(script.dir).resolve() == Path(service.__file__).resolve().parent / "migrations"
    chain = [rev.revision for rev in script.walk_revisions("base", "heads")][::-1]
    assert chain[:2] == ["0001", "0002"] and len(script.get_heads()) == 1
    assert all(len(rev.nextrev) <= 1 for rev in script.walk_revisions())
