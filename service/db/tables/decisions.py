"""Conformal calibrators, cost matrices, their per-bucket statistics and roll-ups, served decisions. Every change
here needs an Alembic migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.tables.base import Base, BucketKey, RollupKey


class ConformalCalibrator(Base):
    """A versioned split-conformal calibrator (migration 0003), fitted on the probabilities of one probability
    calibrator: re-fitting that calibrator changes the scores, so at most one is active per
    (model, version, calibrator_version)."""

    __tablename__ = "conformal_calibrators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    calibrator_version: Mapped[int] = mapped_column(Integer)
    conformal_version: Mapped[int] = mapped_column(Integer)
    score: Mapped[str] = mapped_column(String(16))  # lac | aps
    mondrian: Mapped[bool] = mapped_column(Boolean)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # candidate | active | retired
    source: Mapped[str] = mapped_column(String(32))  # card | refit
    n_fit: Mapped[int] = mapped_column(Integer)
    fit_window: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        UniqueConstraint("model", "version", "conformal_version", name="uq_conformal_calibrators_version"),
        Index(
            "uq_conformal_calibrators_one_active",
            "model",
            "version",
            "calibrator_version",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

class CostMatrix(Base):
    """A versioned cost matrix C[a, k] for one model (migration 0003); at most one active per model."""

    __tablename__ = "cost_matrices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    cost_matrix_version: Mapped[int] = mapped_column(Integer)
    matrix: Mapped[list[list[float]]] = mapped_column(JSON)
    actions: Mapped[list[str]] = mapped_column(JSON)
    n_classes: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # active | retired
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        UniqueConstraint("model", "cost_matrix_version", name="uq_cost_matrices_version"),
        Index(
            "uq_cost_matrices_one_active",
            "model",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

class ConformalStat(BucketKey, Base):
    """Labelled predictions that were served a conformal set, per bucket, conformal version and target
    coverage (parts per million, so the key stays an integer): Σ 1[y ∈ C(x)] and Σ |C(x)|."""

    __tablename__ = "conformal_stats"
    conformal_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    coverage_ppm: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    covered_sum: Mapped[float] = mapped_column(Float)
    set_size_sum: Mapped[float] = mapped_column(Float)

class DecisionStat(BucketKey, Base):
    """Labelled predictions that were served a decision, per bucket, cost-matrix version (0: none) and
    abstention threshold (ppm; 0: never abstain): abstentions, correct top labels among the accepted rows, and
    the expected vs realised cost of the Bayes actions taken (Σ gap² for the gap's CI)."""

    __tablename__ = "decision_stats"
    cost_matrix_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    min_confidence_ppm: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    abstained_sum: Mapped[float] = mapped_column(Float)
    accepted_correct_sum: Mapped[float] = mapped_column(Float)
    costed_count: Mapped[float] = mapped_column(Float)
    expected_cost_sum: Mapped[float] = mapped_column(Float)
    realised_cost_sum: Mapped[float] = mapped_column(Float)
    cost_gap_sq_sum: Mapped[float] = mapped_column(Float)

class PredictionDecision(Base):
    """What a prediction was served beyond its probabilities (migration 0003), written by the prediction log
    only for requests that asked for a set or a decision, so plain predictions pay nothing. Feedback joins it
    to score the served set and decision exactly (never recomputed from rounded stored probabilities)."""

    __tablename__ = "prediction_decisions"
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True)
    conformal_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    coverage_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    set_mask: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # numpy.packbits, little bit order
    cost_matrix_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    min_confidence_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[int | None] = mapped_column(Integer, nullable=True)  # Bayes action index; -1 = abstained
    expected_cost: Mapped[float | None] = mapped_column(Float, nullable=True)

class ConformalStatRollup(RollupKey, Base):
    """Roll-ups of ``conformal_stats`` at every ``service.db.rollups.ROLLUP_SPANS`` level (migration 0007)."""

    __tablename__ = "conformal_stats_rollup"
    conformal_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    coverage_ppm: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    covered_sum: Mapped[float] = mapped_column(Float)
    set_size_sum: Mapped[float] = mapped_column(Float)

class DecisionStatRollup(RollupKey, Base):
    """Roll-ups of ``decision_stats`` at every ``service.db.rollups.ROLLUP_SPANS`` level (migration 0007)."""

    __tablename__ = "decision_stats_rollup"
    cost_matrix_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    min_confidence_ppm: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    abstained_sum: Mapped[float] = mapped_column(Float)
    accepted_correct_sum: Mapped[float] = mapped_column(Float)
    costed_count: Mapped[float] = mapped_column(Float)
    expected_cost_sum: Mapped[float] = mapped_column(Float)
    realised_cost_sum: Mapped[float] = mapped_column(Float)
    cost_gap_sq_sum: Mapped[float] = mapped_column(Float)
