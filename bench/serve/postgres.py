"""A fresh PostgreSQL database for one bench run, dropped afterwards (the server at 127.0.0.1:5432)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

ADMIN_URL = os.environ.get("CALIBSERVE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def postgres_reachable(admin_url: str = ADMIN_URL) -> bool:
    engine = create_engine(admin_url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@contextmanager
def fresh_database(admin_url: str = ADMIN_URL) -> Iterator[str]:
    """Yield the URL of a new empty database; drop it (disconnecting leftovers) on the way out."""
    name = f"calibserve_bench_{os.getpid()}_{int(time.time())}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        drop(engine, name)


def drop(engine: Engine, name: str, attempts: int = 10) -> None:
    """Drop ``name``, retrying for ~30 s: other engineers' outage tests restart this PostgreSQL server."""
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            break
        except OperationalError:
            if attempt == attempts - 1:
                print(f"could not drop PostgreSQL database {name}; drop it by hand", file=sys.stderr)
            time.sleep(3)
    engine.dispose()
