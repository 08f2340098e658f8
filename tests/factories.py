"""Small factories shared by the tests: bundled data and the predict/feedback round trip."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.datasets import load_digits


@lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float64), y.astype(np.int64)


def predict(client: Any, rows: np.ndarray, path: str = "/v1/models/digits/predict", **extra: Any) -> dict[str, Any]:
    response = client.post(path, json={"instances": rows.tolist(), **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def post_labels(client: Any, prediction_ids: list[str], labels: list[Any]) -> dict[str, Any]:
    items = [{"prediction_id": p, "label": lab} for p, lab in zip(prediction_ids, labels, strict=True)]
    response = client.post("/v1/feedback", json={"items": items})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [p["prediction_id"] for p in body["predictions"]]


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax in numpy: the independent reference the service's probabilities are checked against."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def hand_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with right-closed bins (m/M, (m+1)/M], the first closed at 0: written out here, independently
    of service.calibration, as the reference for the service's ECE."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    m = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    return float(sum(abs(correct[m == b].sum() - conf[m == b].sum()) for b in range(n_bins)) / len(conf))
