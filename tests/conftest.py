"""Shared fixtures: real databases (SQLite file and a fresh PostgreSQL database per test), the demo model
trained once per session, and the app driven through its lifespan.

PostgreSQL is required: if 127.0.0.1:5432 is unreachable the database fixtures FAIL (they never skip),
unless CALIBSERVE_TEST_SKIP_POSTGRES=1 is set explicitly (and never under CI=true).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.db.migrate import upgrade
from service.settings import Settings

PG_URL = os.environ.get("CALIBSERVE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN_TOKEN = "test-admin-token"


def _postgres_admin_engine():  # type: ignore[no-untyped-def]
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        with _postgres_admin_engine().connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception as exc:
        if os.environ.get("CALIBSERVE_TEST_SKIP_POSTGRES") == "1" and os.environ.get("CI") != "true":
            return False
        pytest.fail(f"PostgreSQL is required for the test suite but {PG_URL} is unreachable: {exc}")


def fresh_postgres_database(name_prefix: str = "calibserve_t") -> tuple[str, str]:
    """Create an empty database on the PostgreSQL server; returns (url, name)."""
    name = f"{name_prefix}_{uuid.uuid4().hex[:12]}"
    engine = _postgres_admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    return url, name


def drop_postgres_database(name: str) -> None:
    engine = _postgres_admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextmanager
def migrated_database(kind: str, directory: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file in ``directory`` or a fresh PostgreSQL database that is
    dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'calibserve.db'}"
        upgrade(url)
        yield url
        return
    url, name = fresh_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[str]:
    if request.param == "postgresql" and not postgres_available:
        pytest.skip("PostgreSQL explicitly disabled with CALIBSERVE_TEST_SKIP_POSTGRES=1")
    with migrated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def trained_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model (digits MLP, FLSD-53, temperature calibrator), trained once for the session."""
    from service.training.pipeline import train_and_export

    root = tmp_path_factory.mktemp("models")
    train_and_export(dataset="digits", loss="flsd53", name="digits", version=1, repository=root,
                     calibrator="temperature", curvature=False, progress=False, epochs=40)
    return root


@pytest.fixture
def model_repository(trained_repository: Path, tmp_path: Path) -> Path:
    """A private copy of the trained repository, so a test may add or break versions."""
    root = tmp_path / "models"
    shutil.copytree(trained_repository, root)
    return root


@pytest.fixture
def settings(database_url: str, model_repository: Path) -> Settings:
    return Settings(
        database_url=database_url, model_repository=model_repository, admin_token=ADMIN_TOKEN,
        spool_dir=model_repository.parent / "spool",
        log_flush_seconds=0.01, calibrator_poll_seconds=0.2, monitor_interval_seconds=0.5,
        drift_min_labels=50, bucket_seconds=60,
        # in-process inserts for the ASGI tests (a ship process per app costs ~1 s of start-up each); the
        # servers of tests/e2e and tests/db/test_ship_process.py run the default, the ship process
        ship_process=False,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
