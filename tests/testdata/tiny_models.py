"""Small ONNX classifiers written straight into a model repository, for exact (golden) tests.

``write_linear``: a fixed 4 → 3 linear layer (logits), so every number a response carries is known.
``write_sklearn``: a scikit-learn LogisticRegression converted by skl2onnx (ZipMap probabilities).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.repository.card import InputSpec, ModelCard, OutputSpec, write_card

WEIGHTS = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0], [-0.5, 0.25, 1.0], [0.3, 0.0, -0.2]], dtype=np.float32)
BIAS = np.array([0.1, -0.2, 0.05], dtype=np.float32)
CLASSES = ["cat", "dog", "bird"]
TEMPERATURE = 2.0


def linear_logits(x: np.ndarray) -> np.ndarray:
    """What the tiny model computes, in float64: x @ W + b."""
    return np.asarray(x, dtype=np.float64) @ WEIGHTS.astype(np.float64) + BIAS.astype(np.float64)


def linear_graph(kind: str = "logits") -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["input", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["scores"])]
    if kind == "probabilities":
        nodes.append(helper.make_node("Softmax", ["scores"], ["probs"], axis=1))
    out = "probs" if kind == "probabilities" else "scores"
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def write_version(repository: Path, name: str, version: int, model: onnx.ModelProto | bytes, card: ModelCard,
                  calibrator: dict[str, object] | None) -> Path:
    directory = repository / name / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    write_card(directory, card)
    if calibrator is not None:
        (directory / "calibrator.json").write_text(json.dumps(calibrator))
    return directory


def write_linear(repository: Path, name: str = "tiny", version: int = 1, *, kind: str = "logits",
                 temperature: float = TEMPERATURE) -> Path:
    """The fixed linear model with a temperature calibrator (T = ``temperature``)."""
    card = ModelCard(name=name, version=version, classes=CLASSES, input=InputSpec(name="input", shape=[4]),
                     output=OutputSpec(name="probs" if kind == "probabilities" else "scores", kind=kind))
    calibrator = {"method": "temperature", "params": {"temperature": temperature, "t_min": 0.01, "t_max": 100.0}}
    return write_version(repository, name, version, linear_graph(kind), card, calibrator)


@lru_cache(maxsize=1)
def _iris_classifier() -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X.astype(np.float32), y)


@lru_cache(maxsize=2)
def _iris_onnx(zipmap: bool) -> bytes:
    from skl2onnx import to_onnx

    clf = _iris_classifier()
    onx = to_onnx(clf, np.zeros((1, 4), dtype=np.float32), options={id(clf): {"zipmap": zipmap}}, target_opset=17)
    return onx.SerializeToString()  # type: ignore[no-any-return]


def write_sklearn(repository: Path, name: str = "iris", version: int = 1, *, zipmap: bool = True) -> Path:
    """LogisticRegression on iris (bundled with scikit-learn), converted by skl2onnx."""
    card = ModelCard(name=name, version=version, classes=["setosa", "versicolor", "virginica"],
                     input=InputSpec(name="X", shape=[4]),
                     output=OutputSpec(name="output_probability", kind="probabilities"))
    return write_version(repository, name, version, _iris_onnx(zipmap), card, None)


def sklearn_reference(X: np.ndarray) -> np.ndarray:
    """scikit-learn's own ``predict_proba`` of the converted classifier, for comparison."""
    return _iris_classifier().predict_proba(X)  # type: ignore[no-any-return]
