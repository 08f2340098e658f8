"""Native REST (v1) predict format: ``{"instances": [[…]], "top_k"?, "tags"?, "coverage"?, "min_confidence"?,
"decision"?}`` in, per-instance ``prediction_id``, ``label``, ``class_index``, ``confidence``, ``probabilities``
(+ ``top_k``, ``prediction_set``, ``decision``, ``expected_cost``) out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.calibration.decide import action_names, set_labels
from service.errors import InvalidInput
from service.handlers.decision_options import Served, parse_ask
from service.handlers.json_body import json_object
from service.handlers.predictor import Decoded, PredictionBatch, Rendered
from service.repository.loaded import LoadedVersion
from service.validation import check_tags


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
        ask = parse_ask(data.get("coverage"), data.get("min_confidence"), data.get("decision"))
        return V1Request(rows, check_tags(data.get("tags")), ask=ask, top_k=top_k)

    def render(self, batch: PredictionBatch, decoded: V1Request) -> Rendered:
        return Rendered(orjson.dumps(render_predictions(batch, decoded.top_k), option=orjson.OPT_SERIALIZE_NUMPY))


def render_predictions(batch: PredictionBatch, top_k: int | None) -> dict[str, Any]:
    classes = batch.classes
    probs = batch.probabilities
    # whole arrays to Python values once (numpy indexing per row and field cost ~150 µs at batch 64); float64
    # rows serialise to the same JSON as numpy's (orjson formats both as shortest round-trip doubles)
    rows: list[Any] = probs.tolist() if probs.dtype == np.float64 else list(probs)
    predictions: list[dict[str, Any]] = [
        {"prediction_id": pid, "label": classes[k], "class_index": k, "confidence": confidence, "probabilities": row}
        for pid, k, confidence, row in zip(batch.prediction_ids, batch.class_index.tolist(),
                                           batch.confidence.tolist(), rows, strict=True)]
    if top_k:
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k].tolist()  # ties: the lower class first
        for item, ranks, row in zip(predictions, order, rows, strict=True):
            item["top_k"] = [{"label": classes[j], "class_index": j, "probability": float(row[j])} for j in ranks]
    out = {
        "model": batch.loaded.name, "model_version": batch.loaded.version,
        "calibrator_version": batch.serving.calibrator_version, "calibration_method": batch.serving.method,
        "classes": classes, "predictions": predictions,
    }
    if batch.served is not None:
        out |= render_served(batch.served, predictions, classes)
    return out


def render_served(served: Served, predictions: list[dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    """Per instance ``prediction_set`` / ``decision`` / ``expected_cost``; the versions that decided, once."""
    d = served.decided
    if d.set_mask is not None:
        for item, labels in zip(predictions, set_labels(d.set_mask, classes), strict=True):
            item["prediction_set"] = labels
    if d.actions is not None:
        for item, name in zip(predictions, action_names(d.actions, served.action_names), strict=True):
            item["decision"] = name
    if d.expected_cost is not None:
        for item, cost in zip(predictions, d.expected_cost.tolist(), strict=True):
            item["expected_cost"] = None if cost != cost else cost  # NaN: abstained, no action taken
    head: dict[str, Any] = {}
    if d.set_mask is not None:
        head |= {"coverage": served.ask.coverage, "conformal_version": served.conformal_version}
    if d.actions is not None:
        head |= {"min_confidence": served.ask.min_confidence, "cost_matrix_version": served.cost_matrix_version}
    return head
