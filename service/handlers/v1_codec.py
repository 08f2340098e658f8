"""Native REST (v1) predict format: ``{"instances": [[…]], "top_k"?, "tags"?}`` in, per-instance
``prediction_id``, ``label``, ``class_index``, ``confidence``, ``probabilities`` (+ ``top_k``) out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.errors import InvalidInput
from service.handlers.json_body import json_object
from service.handlers.predictor import Decoded, PredictionBatch, Rendered
from service.repository.loaded import LoadedVersion


@dataclass
class V1Request(Decoded):
    top_k: int | None = None


def as_feature_matrix(values: Any, n_features: int) -> np.ndarray:
    """Turn decoded JSON (rows of numbers) into an (n, n_features) array or say what is wrong."""
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
    return arr.reshape(arr.shape[0], -1)


def parse_top_k(value: Any, n_classes: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n_classes:
        raise InvalidInput(f"top_k must be an integer between 1 and {n_classes}")
    return value


class V1Codec:
    endpoint = "v1_predict"

    def decode(self, body: bytes, headers: Mapping[str, str], loaded: LoadedVersion) -> V1Request:
        data = json_object(body)
        rows = as_feature_matrix(data.get("instances"), loaded.classifier.n_features)
        top_k = parse_top_k(data.get("top_k"), len(loaded.card.classes))
        tags = data.get("tags")
        if tags is not None and not isinstance(tags, dict):
            raise InvalidInput("tags must be a JSON object")
        return V1Request(rows, tags, top_k)

    def render(self, batch: PredictionBatch, decoded: V1Request) -> Rendered:
        return Rendered(orjson.dumps(render_predictions(batch, decoded.top_k), option=orjson.OPT_SERIALIZE_NUMPY))


def render_predictions(batch: PredictionBatch, top_k: int | None) -> dict[str, Any]:
    classes = batch.classes
    probs = batch.probabilities
    order = np.argsort(-probs, axis=1)[:, :top_k] if top_k else None
    predictions = []
    for i, pid in enumerate(batch.prediction_ids):
        k = int(batch.class_index[i])
        item: dict[str, Any] = {
            "prediction_id": pid, "label": classes[k], "class_index": k,
            "confidence": float(batch.confidence[i]), "probabilities": probs[i],
        }
        if order is not None:
            item["top_k"] = [{"label": classes[j], "class_index": int(j), "probability": float(probs[i, j])}
                             for j in order[i]]
        predictions.append(item)
    return {
        "model": batch.loaded.name, "model_version": batch.loaded.version,
        "calibrator_version": batch.serving.calibrator_version, "calibration_method": batch.serving.method,
        "classes": classes, "predictions": predictions,
    }
