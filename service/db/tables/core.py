"""Predictions, their tags, feedback, calibrators, aliases and the audit log. Every change here needs an Alembic
migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.tables.base import Base


class Prediction(Base):
    """One served prediction. Ids are UUIDv7 strings: time-ordered, and they carry the prediction time."""

    __tablename__ = "predictions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    calibrator_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # float32 little-endian vectors: raw logits (so calibrators can be re-fitted) and the served probabilities
    logits: Mapped[bytes] = mapped_column(LargeBinary)
    probabilities: Mapped[bytes] = mapped_column(LargeBinary)
    confidence: Mapped[float] = mapped_column(Float)
    class_index: Mapped[int] = mapped_column(Integer)
    # the request's tags, stored once in ``prediction_tags`` (migration 0006; before, a copy in every row)
    tags_id: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = (Index("ix_predictions_model_version_created", "model", "version", "created_at"),)

class PredictionTags(Base):
    """Request tags, stored once (migration 0006) however many rows and requests carry them: keyed by the
    first 128 bits of the SHA-256 of their canonical JSON (sorted keys), which ``predictions.tags_id`` holds.
    Identical tags on a million requests are one row; a re-shipped block inserts nothing twice."""

    __tablename__ = "prediction_tags"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON)

class Feedback(Base):
    """Ground truth for an earlier prediction; at most one per prediction (first write wins)."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"), unique=True)
    label: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

class Calibrator(Base):
    """A versioned calibrator for one model version. At most one is ``active`` (partial unique index)."""

    __tablename__ = "calibrators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    calibrator_version: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # candidate | active | retired
    source: Mapped[str] = mapped_column(String(32))  # card | refit
    fit_window: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    n_fit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    previous_active: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        UniqueConstraint("model", "version", "calibrator_version", name="uq_calibrators_version"),
        Index(
            "uq_calibrators_one_active",
            "model",
            "version",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

class Alias(Base):
    """A named pointer to a model version (``production``, ``staging``, …)."""

    __tablename__ = "aliases"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

class AuditLog(Base):
    """Every admin action: who, what, on which model version, with which outcome."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text)
