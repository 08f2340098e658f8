"""Per-bucket calibration and prediction statistics (fine buckets) and their roll-ups. Every change here needs an
Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    Float,
    Integer,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.tables.base import Base, BucketKey, RollupKey


class CalibrationBin(BucketKey, Base):
    """Per-bin sufficient statistics of labelled predictions, by prediction-time bucket (fine bins)."""

    __tablename__ = "calibration_stats"
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    confidence_sum: Mapped[float] = mapped_column(Float)
    correct_sum: Mapped[float] = mapped_column(Float)

class CalibrationClassBin(BucketKey, Base):
    """Class-wise table: for class k and coarse bin m, count, Σ q_k and Σ 1[y = k]."""

    __tablename__ = "calibration_class_stats"
    class_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    prob_sum: Mapped[float] = mapped_column(Float)
    label_sum: Mapped[float] = mapped_column(Float)

class CalibrationTotals(BucketKey, Base):
    """Per-bucket totals that are not per-bin: labelled count, Σ NLL, Σ Brier."""

    __tablename__ = "calibration_totals"
    count: Mapped[float] = mapped_column(Float)
    nll_sum: Mapped[float] = mapped_column(Float)
    brier_sum: Mapped[float] = mapped_column(Float)

class PredictionCount(BucketKey, Base):
    """Predictions served per prediction-time bucket (label coverage = labelled / predicted, O(buckets))."""

    __tablename__ = "prediction_counts"
    count: Mapped[float] = mapped_column(Float)

class PredictionConfidenceBin(BucketKey, Base):
    """Top-label confidence histogram of ALL served predictions per bucket (fine bins; migration 0002):
    label-free drift (KS/PSI, expected accuracy) needs every prediction, not only the labelled ones."""

    __tablename__ = "prediction_confidence_stats"
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    confidence_sum: Mapped[float] = mapped_column(Float)

class CalibrationBinRollup(RollupKey, Base):
    __tablename__ = "calibration_stats_rollup"
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    confidence_sum: Mapped[float] = mapped_column(Float)
    correct_sum: Mapped[float] = mapped_column(Float)

class CalibrationClassBinRollup(RollupKey, Base):
    __tablename__ = "calibration_class_stats_rollup"
    class_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    prob_sum: Mapped[float] = mapped_column(Float)
    label_sum: Mapped[float] = mapped_column(Float)

class CalibrationTotalsRollup(RollupKey, Base):
    __tablename__ = "calibration_totals_rollup"
    count: Mapped[float] = mapped_column(Float)
    nll_sum: Mapped[float] = mapped_column(Float)
    brier_sum: Mapped[float] = mapped_column(Float)

class PredictionCountRollup(RollupKey, Base):
    __tablename__ = "prediction_counts_rollup"
    count: Mapped[float] = mapped_column(Float)

class PredictionConfidenceBinRollup(RollupKey, Base):
    __tablename__ = "prediction_confidence_stats_rollup"
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    confidence_sum: Mapped[float] = mapped_column(Float)
