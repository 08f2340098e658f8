"""The onnxruntime wrapper: logits and probability models (scikit-learn ZipMap converts), kind inference."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service.repository.card import OutputSpec, read_card, write_card
from service.repository.policy import BatchingConfig, PolicyError, parse_batching
from service.repository.registry import load_version
from service.repository.runtime import Batched, infer_output_kind
from tests.testdata.tiny_models import linear_logits, sklearn_reference, write_linear, write_sklearn

IRIS_ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


def test_logits_model_scores_are_its_logits(tmp_path: Path) -> None:
    loaded = load_version(write_linear(tmp_path))
    x = np.array([[1, 2, 3, 4], [0.5, -1, 0, 2]], dtype=np.float32)
    np.testing.assert_allclose(loaded.classifier.scores(x), linear_logits(x), rtol=1e-6)
    assert loaded.classifier.output_kind == "logits"


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "tensor"])
def test_sklearn_logistic_regression_scores_are_log_probabilities(tmp_path: Path, zipmap: bool) -> None:
    """skl2onnx output (ZipMap list of dicts, or a plain tensor) vs scikit-learn's own predict_proba."""
    loaded = load_version(write_sklearn(tmp_path, zipmap=zipmap))
    scores = loaded.classifier.scores(IRIS_ROWS)
    np.testing.assert_allclose(np.exp(scores), sklearn_reference(IRIS_ROWS), atol=1e-6)
    assert loaded.classifier.output_kind == "probabilities"
    assert loaded.classifier.zipmap is zipmap


def test_output_kind_is_inferred_from_the_graph(tmp_path: Path) -> None:
    zipmap = write_sklearn(tmp_path, "zm", zipmap=True) / "model.onnx"
    tensor = write_sklearn(tmp_path, "tp", zipmap=False) / "model.onnx"
    softmax = write_linear(tmp_path, "soft", kind="probabilities") / "model.onnx"
    logits = write_linear(tmp_path, "lin") / "model.onnx"
    assert infer_output_kind(zipmap, "output_probability") == "probabilities"
    assert infer_output_kind(tensor, "probabilities") == "probabilities"
    assert infer_output_kind(softmax, "probs") == "probabilities"
    assert infer_output_kind(logits, "scores") == "logits"


def test_card_without_kind_gets_it_from_the_graph(tmp_path: Path) -> None:
    directory = write_linear(tmp_path, kind="probabilities")
    card = read_card(directory)
    card.output = OutputSpec.model_construct(name="probs")  # a card that does not say
    write_card(directory, card)
    from service.repository.runtime import OnnxClassifier

    classifier = OnnxClassifier(directory / "model.onnx", card)
    assert classifier.output_kind == "probabilities"


def test_zipmap_declared_as_logits_is_a_load_error(tmp_path: Path) -> None:
    directory = write_sklearn(tmp_path)
    card = read_card(directory)
    card.output = OutputSpec(name="output_probability", kind="logits")
    write_card(directory, card)
    with pytest.raises(ValueError, match="ZipMap"):
        load_version(directory)


def test_class_count_mismatch_is_a_load_error(tmp_path: Path) -> None:
    directory = write_linear(tmp_path)
    card = read_card(directory)
    card.classes = ["a", "b"]
    write_card(directory, card)
    with pytest.raises(ValueError, match="declares 2 classes"):
        load_version(directory)


class _SlowScorer:
    """A stand-in for onnxruntime: 20 ms per call, whatever the batch size; output = 2 × input."""

    n_features = 2

    def __init__(self) -> None:
        self.calls: list[int] = []

    def scores(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(len(rows))
        time.sleep(0.02)
        if (rows < 0).any():
            raise ValueError("negative input")
        return rows * 2.0


def _concurrently(batched: Batched, inputs: list[np.ndarray]) -> list[np.ndarray | BaseException]:
    results: list[np.ndarray | BaseException] = [np.empty(0)] * len(inputs)

    def call(i: int) -> None:
        try:
            results[i] = batched.scores(inputs[i])
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results


def test_batching_merges_concurrent_calls_and_returns_each_its_rows() -> None:
    inner = _SlowScorer()
    batched = Batched(inner, BatchingConfig(max_batch_size=64, max_queue_delay_microseconds=5000))
    inputs = [np.full((i + 1, 2), float(i)) for i in range(8)]
    results = _concurrently(batched, inputs)
    for x, out in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(out, x * 2.0)
    assert len(inner.calls) < 8 and sum(inner.calls) == sum(len(x) for x in inputs)
    assert batched.n_features == 2  # the wrapped scorer's attributes show through


def test_batching_respects_max_batch_size_and_propagates_errors() -> None:
    inner = _SlowScorer()
    batched = Batched(inner, BatchingConfig(max_batch_size=3))
    results = _concurrently(batched, [np.ones((2, 2)) for _ in range(6)] + [-np.ones((1, 2))])
    assert max(inner.calls) <= 3
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors and all(isinstance(e, ValueError) for e in errors)
    assert sum(isinstance(r, np.ndarray) for r in results) >= 5
    assert np.array_equal(batched.scores(np.ones((1, 2))), np.full((1, 2), 2.0))  # idle again: runs at once


def test_batching_config_is_validated() -> None:
    assert parse_batching({}) is None
    assert parse_batching({"dynamic_batching": {}}) == BatchingConfig()
    with pytest.raises(PolicyError):
        parse_batching({"dynamic_batching": {"max_batch_size": 0}})
