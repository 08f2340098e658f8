"""The predict path shared by native REST (/v1) and the Open Inference Protocol (/v2).

validate rows → resolve model version → onnxruntime scores → active calibrator → prediction log (queued).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import uuid_utils

from service.db.writer import PredictionBlock
from service.errors import InvalidInput
from service.handlers.services import Services
from service.repository.calibrator_sync import ActiveCalibration
from service.repository.registry import LoadedVersion


@dataclass
class PredictionBatch:
    loaded: LoadedVersion
    serving: ActiveCalibration
    logits: np.ndarray  # (n, K) raw scores (log-probabilities for probability models)
    probabilities: np.ndarray  # (n, K) calibrated
    class_index: np.ndarray  # (n,)
    confidence: np.ndarray  # (n,)
    prediction_ids: list[str]

    @property
    def classes(self) -> list[str]:
        return self.loaded.card.classes

    def raw_probabilities(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return out


def as_feature_matrix(values: Any, n_features: int) -> np.ndarray:
    """Turn decoded JSON (rows of numbers) into an (n, n_features) float array or say what is wrong."""
    if not isinstance(values, list) or not values:
        raise InvalidInput("instances must be a non-empty list of rows of numbers")
    try:
        arr = np.asarray(values)
    except ValueError as exc:  # ragged nesting
        raise InvalidInput(f"instances are ragged: every row needs {n_features} numbers ({exc})") from None
    if arr.dtype.kind not in "iuf":
        raise InvalidInput("instances must contain only numbers (no strings, booleans, nulls or ragged rows)")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    arr = arr.reshape(arr.shape[0], -1)
    return check_features(arr, n_features)


def check_features(arr: np.ndarray, n_features: int) -> np.ndarray:
    if arr.shape[1] != n_features:
        raise InvalidInput(f"each instance needs {n_features} features, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise InvalidInput(f"instance {bad} contains NaN or infinity")
    return arr


def predict(
    services: Services, *, model: str, ref: str | int | None, rows: np.ndarray, tags: dict[str, Any] | None = None
) -> PredictionBatch:
    loaded = services.registry.resolve(model, ref)
    rows = check_features(rows, loaded.classifier.n_features)
    serving = loaded.serving  # read once: the whole request uses this calibrator
    assert serving is not None  # resolve() guarantees it
    logits = loaded.classifier.scores(rows)
    probs = serving.calibrator.predict_proba(logits)
    class_index = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), class_index]
    ids = log_predictions(services, loaded, serving, logits, probs, class_index, confidence, tags)
    services.metrics.predictions.labels(model, str(loaded.version), str(serving.calibrator_version)).inc(len(ids))
    return PredictionBatch(loaded, serving, logits, probs, class_index, confidence, ids)


def log_predictions(
    services: Services, loaded: LoadedVersion, serving: ActiveCalibration, logits: np.ndarray,
    probs: np.ndarray, class_index: np.ndarray, confidence: np.ndarray, tags: dict[str, Any] | None,
) -> list[str]:
    """Queue the request's rows for the background writer (one block, no per-row work here but the ids)."""
    ids = [str(uuid_utils.uuid7()) for _ in range(len(logits))]
    services.writer.submit(PredictionBlock(
        loaded.name, loaded.version, serving.calibrator_version, datetime.now(UTC), ids, logits.astype("<f4"),
        probs.astype("<f4"), confidence, class_index, tags,
    ))
    return ids
