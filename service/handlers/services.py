"""What the handlers work with, built once in the app lifespan (or the CLI) and passed in explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.db.writer import PredictionWriter
from service.monitoring.metrics import ServiceMetrics
from service.repository.registry import Registry
from service.settings import Settings

if TYPE_CHECKING:  # the batcher module imports this one
    from service.handlers.feedback_batcher import FeedbackBatcher


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    registry: Registry
    writer: PredictionWriter
    metrics: ServiceMetrics
    feedback_batcher: FeedbackBatcher | None = None  # group commit for small feedback requests (lifespan)
