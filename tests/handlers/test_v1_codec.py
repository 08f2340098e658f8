"""The v1 render: every value in the JSON is the batch's float64 value exactly (shortest round-trip text), in
class-index order, with top_k ranked by probability and ties broken by class order."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from service.handlers.v1_codec import V1Codec, V1Request


def _batch(probs: np.ndarray) -> Any:
    n = len(probs)
    card = SimpleNamespace(classes=[f"c{k}" for k in range(probs.shape[1])])
    return SimpleNamespace(
        classes=card.classes, probabilities=probs, class_index=probs.argmax(axis=1), confidence=probs.max(axis=1),
        prediction_ids=[f"id-{i}" for i in range(n)], loaded=SimpleNamespace(name="m", version=1, card=card),
        serving=SimpleNamespace(calibrator_version=2, method="temperature"), served=None)


@pytest.mark.parametrize("top_k", [None, 1, 3])
def test_rendered_values_are_the_batch_values_exactly(top_k: int | None) -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.full(6, 0.3), size=50)
    probs[0] = [1e-300, 0.5, 0.5 - 1e-300, 0.0, 0.0, 0.0]  # subnormal-adjacent and a tie
    out = orjson.loads(V1Codec().render(_batch(probs), V1Request(probs[:, :1], None, top_k=top_k)).body)
    assert out["classes"] == [f"c{k}" for k in range(6)] and out["calibrator_version"] == 2
    for i, item in enumerate(out["predictions"]):
        k = int(np.argmax(probs[i]))
        assert item["prediction_id"] == f"id-{i}" and item["class_index"] == k and item["label"] == f"c{k}"
        assert item["confidence"] == float(probs[i, k])
        assert item["probabilities"] == [float(v) for v in probs[i]]  # exact: == on the parsed doubles
        if top_k is None:
            assert "top_k" not in item
            continue
        ranked = sorted(range(6), key=lambda j: (-probs[i, j], j))[:top_k]
        assert [t["class_index"] for t in item["top_k"]] == ranked
        assert [t["probability"] for t in item["top_k"]] == [float(probs[i, j]) for j in ranked]
