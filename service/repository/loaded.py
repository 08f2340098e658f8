"""What a loaded model version is: its card, its onnxruntime scorer and the calibrator it serves.

Its own module so that the registry and the calibrator sync both import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.calibration import Calibrator
from service.calibration.conformal import SplitConformal
from service.repository.card import ModelCard
from service.repository.runtime import OnnxClassifier


@dataclass(frozen=True)
class ActiveConformal:
    """The active conformal calibrator fitted on this calibrator's probabilities."""

    conformal_version: int
    conformal: SplitConformal


@dataclass(frozen=True)
class ActiveCosts:
    """The model's active cost matrix C (A, K) and its action names."""

    cost_matrix_version: int
    matrix: np.ndarray
    actions: tuple[str, ...]


@dataclass(frozen=True)
class ActiveCalibration:
    """Immutable, swapped whole: a request reads it once and never mixes two calibrators (nor a calibrator
    with another calibrator's conformal sets, nor two cost matrices)."""

    calibrator_version: int
    method: str
    calibrator: Calibrator
    conformal: ActiveConformal | None = None
    costs: ActiveCosts | None = None


@dataclass
class LoadedVersion:
    name: str
    version: int
    directory: Path
    card: ModelCard
    classifier: OnnxClassifier
    serving: ActiveCalibration | None = None
    fingerprint: tuple[int, ...] = ()
