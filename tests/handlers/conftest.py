"""The core objects built as the app lifespan builds them, on the real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.app import build_services
from service.handlers.services import Services
from service.settings import Settings


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    built.registry.load_all()
    built.writer.start()
    built.feedback.start()
    try:
        yield built
    finally:
        built.feedback.stop()
        built.writer.stop()
        built.engine.dispose()
