"""SQLAlchemy 2.0 tables. Every change here needs an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class BucketKey:
    """The key shared by every per-bucket statistics table: (model, version, calibrator_version, bucket)."""

    # sort_order: the key comes first, as in the migrations (the primary key's column order is its index order)
    model: Mapped[str] = mapped_column(String(128), primary_key=True, sort_order=-4)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-3)
    calibrator_version: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-2)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, sort_order=-1)


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


class RollupKey:
    """The key of the hour/day roll-ups (migration 0004): the bucket key plus ``span``, the roll-up width in
    seconds (3600 or 86400). A roll-up row is the sum of the fine buckets whose start lies in
    [bucket, bucket + span); it is written by the same additive upsert, in the same transaction."""

    model: Mapped[str] = mapped_column(String(128), primary_key=True, sort_order=-5)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-4)
    calibrator_version: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-3)
    span: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-2)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, sort_order=-1)


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


class PredictionTags(Base):
    """Request tags, stored once (migration 0006) however many rows and requests carry them: keyed by the
    first 128 bits of the SHA-256 of their canonical JSON (sorted keys), which ``predictions.tags_id`` holds.
    Identical tags on a million requests are one row; a re-shipped block inserts nothing twice."""

    __tablename__ = "prediction_tags"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON)


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
