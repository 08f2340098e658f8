"""What the routes and the CLI work with: the core objects and their collaborators, built once in the app
lifespan (or the CLI) by ``service.app.build_services`` and passed in explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.db.writer import PredictionWriter
from service.handlers.feedback_ingest import FeedbackIngest
from service.handlers.lifecycle import CalibratorLifecycle
from service.handlers.oip import V2Codec
from service.handlers.predictor import Predictor
from service.handlers.shadow import ShadowCalibrators
from service.monitoring.metrics import ServiceMetrics
from service.repository.registry import Registry
from service.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    registry: Registry
    writer: PredictionWriter
    metrics: ServiceMetrics
    predictor: Predictor  # the predict path (/v1 and /v2)
    feedback: FeedbackIngest  # the feedback path
    lifecycle: CalibratorLifecycle  # the admin path
    v2_codec: V2Codec
    shadows: ShadowCalibrators  # shadow calibrators (admin and compare; scoring is in ``feedback``)
