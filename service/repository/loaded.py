"""What a loaded model version is: its card, its onnxruntime scorer and the calibrator it serves.

Its own module so that the registry and the calibrator sync both import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.calibration import Calibrator
from service.repository.card import ModelCard
from service.repository.runtime import OnnxClassifier


@dataclass(frozen=True)
class ActiveCalibration:
    """Immutable, swapped whole: a request reads it once and never mixes two calibrators."""

    calibrator_version: int
    method: str
    calibrator: Calibrator


@dataclass
class LoadedVersion:
    name: str
    version: int
    directory: Path
    card: ModelCard
    classifier: OnnxClassifier
    serving: ActiveCalibration | None = None
    fingerprint: tuple[int, ...] = ()
