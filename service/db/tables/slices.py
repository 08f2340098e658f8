"""Slices: admitted tag values and per-slice calibration statistics with their roll-ups. Every change here needs
an Alembic migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Float,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.tables.base import Base


class SliceValue(Base):
    """A tag value admitted as its own slice (migration 0006): at most ``slice_max_values`` per (model, key).
    Slots 0…N-1 are the bound: two replicas admitting different values concurrently race for the same slot
    and the primary key lets one win, the value's unique constraint stops one value taking two slots."""

    __tablename__ = "slice_values"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    slice_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    slice_value: Mapped[str] = mapped_column(String(128))
    admitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("model", "slice_key", "slice_value", name="uq_slice_values_value"),)

class CalibrationSliceBin(Base):
    """Per-slice fine-bin statistics of labelled predictions (migration 0006): the ``calibration_stats`` sums
    for the rows whose tag ``slice_key`` maps to ``slice_value`` (an admitted value or "other"). The key puts
    ``slice_key`` before ``bucket``, so a window of one key is one index range."""

    __tablename__ = "calibration_slice_stats"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    calibrator_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    slice_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    slice_value: Mapped[str] = mapped_column(String(128), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    confidence_sum: Mapped[float] = mapped_column(Float)
    correct_sum: Mapped[float] = mapped_column(Float)

class CalibrationSliceBinRollup(Base):
    """Hour and day roll-ups of ``calibration_slice_stats`` (``RollupKey`` semantics, migration 0006)."""

    __tablename__ = "calibration_slice_stats_rollup"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    calibrator_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    slice_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    span: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    slice_value: Mapped[str] = mapped_column(String(128), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    confidence_sum: Mapped[float] = mapped_column(Float)
    correct_sum: Mapped[float] = mapped_column(Float)
