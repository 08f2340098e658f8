"""Shadow calibrators and their paired statistics. Every change here needs an Alembic migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Float,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.tables.base import Base, BucketKey


class ShadowCalibrator(Base):
    """A stored calibrator of a model version put in shadow (migration 0005): scored on every new label from
    the stored logits, beside the calibrator that served the prediction. ``policy`` ``if_better_in_shadow``
    activates it once the anytime-valid lower bound of its NLL improvement exceeds ``margin``."""

    __tablename__ = "shadow_calibrators"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    calibrator_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy: Mapped[str] = mapped_column(String(32))  # never | if_better_in_shadow
    margin: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[str] = mapped_column(String(128))

class ShadowPairStat(BucketKey, Base):
    """Paired loss differences d = loss(active) − loss(shadow) per prediction-time bucket (migration 0005):
    ``calibrator_version`` is the shadow, ``active_version`` the calibrator that served the prediction. Sums
    (n, Σd, Σd², Σclip(d)) of NLL and Brier, as ``service.calibration.paired.PairedSums``."""

    __tablename__ = "shadow_pair_stats"
    active_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    nll_sum: Mapped[float] = mapped_column(Float)
    nll_sq_sum: Mapped[float] = mapped_column(Float)
    nll_clipped_sum: Mapped[float] = mapped_column(Float)
    brier_sum: Mapped[float] = mapped_column(Float)
    brier_sq_sum: Mapped[float] = mapped_column(Float)
    brier_clipped_sum: Mapped[float] = mapped_column(Float)
    nll_active_sum: Mapped[float] = mapped_column(Float)  # Σ loss of the serving side: each side's mean loss
    brier_active_sum: Mapped[float] = mapped_column(Float)

class ShadowPairBin(BucketKey, Base):
    """Both sides' fine confidence bins on the SAME labelled rows (migration 0005): ``side`` 0 is the serving
    calibrator re-scored from the logits, 1 the shadow. Kept apart from ``calibration_stats`` so a shadow
    never enters the served calibrator's metrics, counters, drift verdicts, coverage or roll-ups."""

    __tablename__ = "shadow_pair_bins"
    active_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    side: Mapped[int] = mapped_column(Integer, primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    confidence_sum: Mapped[float] = mapped_column(Float)
    correct_sum: Mapped[float] = mapped_column(Float)

class ShadowEvidence(Base):
    """The promotion evidence of one shadow against one serving calibrator since the shadow started
    (migration 0005): the same sums as ``ShadowPairStat`` over every bucket, so the policy reads one row."""

    __tablename__ = "shadow_evidence"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    calibrator_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    active_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    nll_sum: Mapped[float] = mapped_column(Float)
    nll_sq_sum: Mapped[float] = mapped_column(Float)
    nll_clipped_sum: Mapped[float] = mapped_column(Float)
    nll_clipped_sq_sum: Mapped[float] = mapped_column(Float)  # the empirical-Bernstein variance process
