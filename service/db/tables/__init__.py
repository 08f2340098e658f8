"""SQLAlchemy 2.0 tables, one module per concern; every change needs an Alembic migration in
``service/migrations/versions``. Importing this package registers every table on ``Base.metadata``."""

from service.db.tables.base import NAMING, Base, BucketKey, RollupKey
from service.db.tables.calibration import (
    CalibrationBin,
    CalibrationBinRollup,
    CalibrationClassBin,
    CalibrationClassBinRollup,
    CalibrationTotals,
    CalibrationTotalsRollup,
    PredictionConfidenceBin,
    PredictionConfidenceBinRollup,
    PredictionCount,
    PredictionCountRollup,
)
from service.db.tables.core import Alias, AuditLog, Calibrator, Feedback, Prediction, PredictionTags
from service.db.tables.decisions import (
    ConformalCalibrator,
    ConformalStat,
    ConformalStatRollup,
    CostMatrix,
    DecisionStat,
    DecisionStatRollup,
    PredictionDecision,
)
from service.db.tables.shadow import ShadowCalibrator, ShadowEvidence, ShadowPairBin, ShadowPairStat
from service.db.tables.slices import CalibrationSliceBin, CalibrationSliceBinRollup, SliceValue

__all__ = [
    "NAMING",
    "Base",
    "BucketKey",
    "RollupKey",
    "Prediction",
    "PredictionTags",
    "Feedback",
    "Calibrator",
    "Alias",
    "AuditLog",
    "CalibrationBin",
    "CalibrationClassBin",
    "CalibrationTotals",
    "PredictionCount",
    "PredictionConfidenceBin",
    "CalibrationBinRollup",
    "CalibrationClassBinRollup",
    "CalibrationTotalsRollup",
    "PredictionCountRollup",
    "PredictionConfidenceBinRollup",
    "ConformalCalibrator",
    "CostMatrix",
    "ConformalStat",
    "DecisionStat",
    "PredictionDecision",
    "ConformalStatRollup",
    "DecisionStatRollup",
    "SliceValue",
    "CalibrationSliceBin",
    "CalibrationSliceBinRollup",
    "ShadowCalibrator",
    "ShadowPairStat",
    "ShadowPairBin",
    "ShadowEvidence",
]
