"""Run the Alembic migrations programmatically (the demo, ``calibserve db upgrade`` and the tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from service.db.engine import normalise_url

# A package resource, not a path relative to the source tree: the migrations ship inside the package
# (package-data in pyproject.toml), so a wheel or a non-editable install migrates like a checkout does.
MIGRATIONS = "service:migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    # '%' is ConfigParser interpolation syntax; escape it so URLs with %-encoded passwords survive
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
